"""Call the kernels of an einc-built shared library from Python (pure ctypes + numpy).

    import einc
    lib = einc.load("out/libattention.so")
    lib.kernels                                  # ['attention', 'attention_grad']
    help(lib.attention)                          # attention(X: f32[T, D], ...) -> (O: f32[T, K])
    O = lib.attention(X, WQ, WK, WV)             # allocates the output
    lib.attention(X, WQ, WK, WV, out=(O,))       # writes into caller arrays

Each kernel's signature is read from the library (``einc_kernel_list()`` and
``einc_<kernel>_info()``, docs/abi.md), so any library built by ``einc build`` works without
generated Python code. Arguments may be any numpy views (transposed, sliced, reversed,
broadcast): their strides are passed as they are. Every check is the library's: a bad call
raises :class:`EincError` with the status code and the library's own explanation
(``einc_last_error()``, e.g. "input `WK` axis 0 has extent 5, but dim `D` is 4, as bound by
input `X` axis 1"), and the library has written nothing.

Calls are cheap (a few microseconds for small arrays): everything about a kernel is read once,
each thread keeps one descriptor buffer per kernel, an argument's shape and strides are copied
into it only when they differ from the previous call's, and the data pointer is read straight
from the numpy array object (see ``_data_address``).
"""

import ctypes
import inspect
import sys
import textwrap
import threading

import numpy as np

#: The ABI version this module was written for.
ABI_VERSION = 1

_DTYPES = {1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32),
           4: np.dtype(np.int64)}
_CODES = {dt: code for code, dt in _DTYPES.items()}
_NAMES = {1: "f32", 2: "f64", 3: "i32", 4: "i64"}

#: Status code -> (name, meaning), as docs/abi.md defines them.
STATUS = {
    0: ("EINC_OK", "success"),
    1: ("EINC_BAD_ARG_COUNT",
        "wrong number of arguments: nargs differs from the kernel's argument count"),
    2: ("EINC_BAD_DTYPE", "wrong dtype: an argument's dtype differs from its declaration"),
    3: ("EINC_BAD_RANK", "wrong rank: an argument's rank differs from its declaration"),
    4: ("EINC_BAD_SHAPE",
        "wrong shape: an extent is negative, differs from a fixed extent, or binds a dim to a "
        "different value than an earlier argument did"),
    5: ("EINC_NULL_POINTER", "null pointer: a data, shape or strides pointer is null"),
    6: ("EINC_ALIASING", "aliasing: an output overlaps another argument"),
    7: ("EINC_OUT_OF_MEMORY", "out of memory: a temporary buffer could not be allocated"),
}


class Tensor(ctypes.Structure):
    """``einc_tensor``: one argument descriptor."""
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64))]


class ArgInfo(ctypes.Structure):
    """``einc_arg_info``."""
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("is_output", ctypes.c_int32), ("reserved", ctypes.c_int32),
                ("extents", ctypes.POINTER(ctypes.c_int64))]


class KernelInfo(ctypes.Structure):
    """``einc_kernel_info``."""
    _fields_ = [("abi_version", ctypes.c_int32), ("nargs", ctypes.c_int32),
                ("ninputs", ctypes.c_int32), ("ndims", ctypes.c_int32),
                ("name", ctypes.c_char_p), ("args", ctypes.POINTER(ArgInfo)),
                ("dim_names", ctypes.POINTER(ctypes.c_char_p))]


class EincError(RuntimeError):
    """A kernel refused a call; ``code`` is the status, ``status`` its name and ``detail``
    the library's explanation (``einc_last_error()``), when it gave one."""

    def __init__(self, kernel, code, detail=None):
        self.kernel = kernel
        self.code = code
        self.detail = detail
        self.status, meaning = STATUS.get(code, ("EINC_UNKNOWN", "unknown status"))
        super().__init__(f"einc kernel `{kernel}` failed with {self.status} ({code}): "
                         f"{detail or meaning}")


class Arg:
    """One argument of a kernel: ``name``, numpy ``dtype`` (None for an unknown code),
    ``is_output`` and ``extents`` (``e >= 0`` fixed, ``e < 0`` dim ``-e - 1``)."""

    def __init__(self, info):
        self.name = info.name.decode()
        self.code = info.dtype
        self.dtype = _DTYPES.get(info.dtype)
        self.is_output = bool(info.is_output)
        self.extents = tuple(info.extents[i] for i in range(info.rank))

    def __repr__(self):
        kind = "output" if self.is_output else "input"
        return f"Arg({self.name!r}, {self.dtype}, {kind}, extents={self.extents})"


def descriptor(array):
    """An ``einc_tensor`` for a numpy array, and the ctypes arrays it points to (keep them
    alive for the call). Dtypes the ABI lacks get code 0, which the kernel rejects."""
    itemsize = array.dtype.itemsize
    if any(s % itemsize for s in array.strides):
        raise ValueError(f"strides {array.strides} are not multiples of the element size "
                         f"{itemsize}: the ABI counts strides in elements")
    shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    strides = (ctypes.c_int64 * max(array.ndim, 1))(*(s // itemsize for s in array.strides))
    code = _CODES.get(array.dtype, 0) if array.dtype.isnative else 0
    t = Tensor(array.ctypes.data, code, array.ndim, shape, strides)
    return t, (shape, strides, array)


# --- The data pointer of an ndarray, fast --------------------------------------------------
#
# ``array.ctypes.data`` and ``array.__array_interface__`` build Python objects on every call
# and cost about as much as a whole small kernel call. In CPython, ``id(array)`` is the address
# of the array object, whose ``data`` field (numpy's ``PyArrayObject_fields``, a stable part
# of numpy's C ABI) follows the object header at offset 16 on 64-bit platforms; one ctypes
# array spanning the address space reads it. This is checked against ``ctypes.data`` when the
# module is imported, and the slow, portable way is used when the check fails.

_DATA_OFFSET = 16


def _slow_data_address(array):
    return array.ctypes.data


def _make_fast_data_address():
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    memory = (ctypes.c_uint64 * (1 << 59)).from_address(0)

    def fast(array):
        return memory[(id(array) + _DATA_OFFSET) >> 3]

    probes = [np.arange(6.0), np.arange(12, dtype=np.int32).reshape(3, 4)[1:, ::-2],
              np.zeros(0, np.float32)]
    for p in probes:
        if p.ctypes.data != fast(p):
            return None
    return fast


_data_address = _make_fast_data_address() or _slow_data_address


def type_text(code, extents, dim_names):
    """``f32[T, D]``: a dtype and extents as the ``.ein`` source writes them."""
    name = _NAMES.get(code, f"dtype{code}")
    if not extents:
        return name
    dims = [str(e) if e >= 0 else dim_names[-e - 1] for e in extents]
    return f"{name}[{', '.join(dims)}]"


class _Annotation:
    """An annotation that ``inspect`` shows as its text (``X: f32[T, D]``)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


class _State:
    """One thread's call buffer for one kernel: the descriptors (4 int64 words each: data,
    dtype | rank << 32, shape pointer, strides pointer), then every argument's extents and
    element strides, and what was last written there."""

    def __init__(self, kernel):
        ranks = [len(a.extents) for a in kernel.args]
        nargs = len(ranks)
        self.buffer = (ctypes.c_int64 * (4 * nargs + 2 * sum(ranks) + 1))()
        self.address = ctypes.addressof(self.buffer)
        self.words = memoryview(self.buffer).cast("B").cast("q")
        self.offsets = []
        at = 4 * nargs
        for k, rank in enumerate(ranks):
            self.offsets.append(at)
            self.words[4 * k + 2] = self.address + 8 * at
            self.words[4 * k + 3] = self.address + 8 * (at + rank)
            at += 2 * rank
        self.ranks = ranks
        self.ninputs = kernel.ninputs
        self.layouts = [None] * nargs
        self.out_shapes = None

    def set_layout(self, k, array, layout):
        """Writes argument ``k``'s dtype, rank, extents and element strides. An array of
        another rank than the declared one gets only its dtype and rank written: the kernel
        rejects it before reading its extents."""
        shape, strides = layout
        dtype = array.dtype
        code = _CODES.get(dtype, 0) if dtype.isnative else 0
        rank = len(shape)
        size = dtype.itemsize
        if any(s % size for s in strides):
            raise ValueError(f"strides {strides} are not multiples of the element size {size}: "
                             f"the ABI counts strides in elements")
        self.words[4 * k + 1] = code | rank << 32
        if k < self.ninputs:
            self.out_shapes = None
        if rank != self.ranks[k]:
            self.layouts[k] = None
            return
        at = self.offsets[k]
        for n in range(rank):
            self.words[at + n] = shape[n]
            self.words[at + rank + n] = strides[n] // size
        self.layouts[k] = layout


class Kernel:
    """A kernel of a loaded library: its signature, and the function that calls it
    (:attr:`function`, which is what ``lib.NAME`` returns)."""

    def __init__(self, lib, info):
        if info.abi_version != ABI_VERSION:
            raise RuntimeError(f"kernel `{info.name.decode()}` uses ABI version "
                               f"{info.abi_version}; this module speaks version {ABI_VERSION}")
        self.name = info.name.decode()
        self.args = [Arg(info.args[i]) for i in range(info.nargs)]
        self.ninputs = info.ninputs
        self.dim_names = [info.dim_names[i].decode() for i in range(info.ndims)]
        entry = getattr(lib, f"einc_{self.name}")
        entry.restype = ctypes.c_int32
        entry.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self._entry = entry
        self._last_error = _last_error_fn(lib)
        self._local = threading.local()
        self.signature = self._signature_text()
        self.function = self._make_function()

    @property
    def inputs(self):
        """The input arguments, in order."""
        return self.args[:self.ninputs]

    @property
    def outputs(self):
        """The output arguments, in order."""
        return self.args[self.ninputs:]

    def __repr__(self):
        return f"<einc kernel {self.signature}>"

    def _signature_text(self):
        def decl(a):
            return f"{a.name}: {type_text(a.code, a.extents, self.dim_names)}"
        ins = ", ".join(decl(a) for a in self.inputs)
        outs = ", ".join(decl(a) for a in self.outputs)
        return f"{self.name}({ins}) -> ({outs})"

    def call_descriptors(self, tensors, nargs=None):
        """Calls the entry point on raw descriptors and returns its status code (no
        exception): for tests and callers building descriptors themselves."""
        array = (Tensor * max(len(tensors), 1))(*tensors)
        return self._entry(ctypes.addressof(array), len(tensors) if nargs is None else nargs)

    def last_error(self):
        """The library's explanation of the last failed call on this thread, or None."""
        message = self._last_error() if self._last_error else None
        return message.decode(errors="replace") if message else None

    def _fail(self, code):
        return EincError(self.name, code, self.last_error())

    def _state(self):
        try:
            return self._local.state
        except AttributeError:
            self._local.state = _State(self)
            return self._local.state

    def _output_shapes(self, inputs):
        """The outputs' shapes from the dims the inputs bind (left to right, first binding
        wins, as the kernel binds them); inputs of the wrong rank bind nothing (the kernel
        rejects them)."""
        dims = {}
        for arg, a in zip(self.inputs, inputs):
            shape = np.shape(a)
            if len(shape) == len(arg.extents):
                for e, n in zip(arg.extents, shape):
                    if e < 0:
                        dims.setdefault(-e - 1, n)
        shapes = []
        for arg in self.outputs:
            shape = []
            for e in arg.extents:
                if e >= 0:
                    shape.append(e)
                elif -e - 1 in dims:
                    shape.append(dims[-e - 1])
                else:
                    raise ValueError(
                        f"kernel `{self.name}`: dim {self.dim_names[-e - 1]} of output "
                        f"{arg.name} is not bound by the inputs; pass the outputs with out=")
            if arg.dtype is None:
                raise ValueError(f"output {arg.name} has a dtype numpy lacks")
            shapes.append(tuple(shape))
        return shapes

    def _allocate(self, shapes):
        outs = []
        for arg, shape in zip(self.outputs, shapes):
            try:
                outs.append(np.empty(shape, dtype=arg.dtype))
            except MemoryError:
                size = arg.dtype.itemsize
                for n in shape:
                    size *= n
                raise MemoryError(
                    f"kernel `{self.name}`: cannot allocate output `{arg.name}` "
                    f"({type_text(arg.code, shape, [])}): {size} bytes") from None
        return outs

    def _call(self, inputs, out):
        """The general call: any argument types, ``out=``, wrong counts."""
        inputs = [a if isinstance(a, np.ndarray) else
                  np.asarray(a, dtype=arg.dtype if arg else None)
                  for a, arg in zip(inputs, self.inputs + [None] * len(inputs))]
        if out is None:
            # With the wrong number of inputs there is nothing sensible to allocate; the
            # kernel reports the count.
            outs = (self._allocate(self._output_shapes(inputs))
                    if len(inputs) == self.ninputs else [])
        else:
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            if not all(isinstance(o, np.ndarray) for o in outs):
                raise TypeError("out= takes numpy arrays")
        arrays = list(inputs) + outs
        if len(arrays) != len(self.args):
            descs = [descriptor(a) for a in arrays]
            code = self.call_descriptors([d for d, _ in descs])
        else:
            state = self._state()
            for k, a in enumerate(arrays):
                state.set_layout(k, a, (a.shape, a.strides))
                state.words[4 * k] = _data_address(a)
            code = self._entry(state.address, len(arrays))
        if code != 0:
            raise self._fail(code)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _make_function(self):
        """The function ``lib.NAME``: a fast path for numpy arrays of the declared dtypes (the
        declared number of inputs, and of outputs if ``out=`` is given), and :meth:`_call`
        for everything else."""
        kernel = self
        nin = self.ninputs
        nargs = len(self.args)
        dtypes = [a.dtype for a in self.inputs]
        out_dtypes = [a.dtype for a in self.outputs]
        single = len(out_dtypes) == 1
        entry = self._entry
        ndarray = np.ndarray
        empty = np.empty
        address = _data_address
        local = self._local

        def call(*inputs, out=None, **named):
            if named:
                inputs = kernel._named(inputs, named)
            if len(inputs) != nin:
                return kernel._call(inputs, out)
            try:
                state = local.state
            except AttributeError:
                state = kernel._state()
            layouts = state.layouts
            words = state.words
            for k in range(nin):
                a = inputs[k]
                if type(a) is not ndarray or a.dtype is not dtypes[k]:
                    return kernel._call(inputs, out)
                layout = (a.shape, a.strides)
                if layout != layouts[k]:
                    state.set_layout(k, a, layout)
                words[4 * k] = address(a)
            if out is None:
                if state.out_shapes is None:
                    state.out_shapes = kernel._output_shapes(inputs)
                try:
                    outs = [empty(s, d) for s, d in zip(state.out_shapes, out_dtypes)]
                except MemoryError:
                    outs = kernel._allocate(state.out_shapes)
            else:
                outs = out if type(out) in (tuple, list) else (out,)
                if len(outs) != nargs - nin:
                    return kernel._call(inputs, out)
            for k in range(nin, nargs):
                o = outs[k - nin]
                if type(o) is not ndarray or o.dtype is not out_dtypes[k - nin]:
                    return kernel._call(inputs, out)
                layout = (o.shape, o.strides)
                if layout != layouts[k]:
                    state.set_layout(k, o, layout)
                words[4 * k] = address(o)
            code = entry(state.address, nargs)
            if code != 0:
                raise kernel._fail(code)
            return outs[0] if single else tuple(outs)

        call.__name__ = call.__qualname__ = self.name
        call.__module__ = __name__
        call.__doc__ = self.signature + "\n\n" + textwrap.fill(
            f"Runs the einc kernel `{self.name}` on numpy arrays (any strides) and returns "
            f"{'its output' if single else 'a tuple of its outputs'}, allocated from the dims "
            f"the inputs bind; out= gives arrays to write into instead. Dims: "
            f"{', '.join(self.dim_names) or 'none (every extent is fixed)'}. A call the "
            f"kernel refuses raises EincError and writes nothing.", 79)
        params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=_Annotation(type_text(a.code, a.extents,
                                                                     self.dim_names)))
                  for a in self.inputs]
        params.append(inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None))
        outs = ", ".join(f"{a.name}: {type_text(a.code, a.extents, self.dim_names)}"
                         for a in self.outputs)
        call.__signature__ = inspect.Signature(params,
                                               return_annotation=_Annotation(f"({outs})"))
        for attr in ("name", "args", "inputs", "outputs", "ninputs", "dim_names", "signature",
                     "call_descriptors", "last_error"):
            setattr(call, attr, getattr(self, attr))
        call.kernel = self
        return call

    def _named(self, inputs, named):
        """Positional ``inputs`` followed by the inputs given by name, in declaration order."""
        names = [a.name for a in self.inputs]
        unknown = [n for n in named if n not in names]
        if unknown:
            raise TypeError(f"{self.name}() has no input {unknown[0]!r}; its inputs are "
                            f"{', '.join(names)}")
        given = list(inputs)
        for name in names[len(given):]:
            if name not in named:
                raise TypeError(f"{self.name}() is missing input {name!r}")
            given.append(named.pop(name))
        if named:
            raise TypeError(f"{self.name}() got input {next(iter(named))!r} twice")
        return given


def _last_error_fn(lib):
    try:
        fn = lib.einc_last_error
    except AttributeError:
        return None
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    return fn


class Library:
    """A loaded einc library. Its kernels are attributes (``lib.attention``), listed by
    :attr:`kernels` and ``dir(lib)``."""

    def __init__(self, path):
        self.path = str(path)
        self._lib = ctypes.CDLL(self.path)
        try:
            version_fn = self._lib.einc_abi_version
            list_fn = self._lib.einc_kernel_list
        except AttributeError:
            raise OSError(f"{self.path} is not an einc library (no einc_abi_version or "
                          f"einc_kernel_list)") from None
        version_fn.restype = ctypes.c_int32
        version_fn.argtypes = []
        self.abi_version = version_fn()
        if self.abi_version != ABI_VERSION:
            raise OSError(f"{self.path} has ABI version {self.abi_version}; this module "
                          f"speaks version {ABI_VERSION}")
        list_fn.restype = ctypes.POINTER(ctypes.POINTER(KernelInfo))
        list_fn.argtypes = []
        listed = list_fn()
        self._kernels = {}
        n = 0
        while listed[n]:
            k = Kernel(self._lib, listed[n].contents)
            self._kernels[k.name] = k
            n += 1

    @property
    def kernels(self):
        """The names of the library's kernels, in declaration order."""
        return list(self._kernels)

    def kernel(self, name):
        """The :class:`Kernel` ``name`` (AttributeError when the library has none)."""
        try:
            return self._kernels[name]
        except KeyError:
            raise AttributeError(f"the library {self.path} has no kernel `{name}`; its kernels "
                                 f"are {', '.join(self._kernels) or 'none'}") from None

    def last_error(self):
        """The library's explanation of the last failed call on this thread, or None."""
        fn = _last_error_fn(self._lib)
        message = fn() if fn else None
        return message.decode(errors="replace") if message else None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.kernel(name).function

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._kernels))

    def __repr__(self):
        return f"<einc library {self.path}: {', '.join(self._kernels)}>"


def load(path):
    """Loads the einc library at ``path``."""
    return Library(path)
