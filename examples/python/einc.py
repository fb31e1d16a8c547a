"""Call the kernels of an einc-built shared library from Python (pure ctypes + numpy).

    import einc
    lib = einc.load("out/libattention.so")
    O = lib.attention(X, WQ, WK, WV)             # allocates the output
    lib.attention(X, WQ, WK, WV, out=(O,))       # writes into caller arrays

Each kernel's signature is read from the library's ``einc_<kernel>_info()`` (docs/abi.md), so
any library built by ``einc build`` works without generated Python code. Arguments may be any
numpy views (transposed, sliced, reversed, broadcast): their strides are passed as they are.
Every check is the library's: a bad call raises :class:`EincError` carrying the status code
and its meaning, and the library has written nothing.
"""

import ctypes

import numpy as np

#: The ABI version this module was written for.
ABI_VERSION = 1

_DTYPES = {1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32),
           4: np.dtype(np.int64)}
_CODES = {dt: code for code, dt in _DTYPES.items()}

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
    """A kernel refused a call; ``code`` is the status, ``status`` its name."""

    def __init__(self, kernel, code):
        self.kernel = kernel
        self.code = code
        self.status, meaning = STATUS.get(code, ("EINC_UNKNOWN", "unknown status"))
        super().__init__(f"einc kernel `{kernel}` failed with {self.status} ({code}): {meaning}")


class Arg:
    """One argument of a kernel: ``name``, numpy ``dtype`` (None for an unknown code),
    ``is_output`` and ``extents`` (``e >= 0`` fixed, ``e < 0`` dim ``-e - 1``)."""

    def __init__(self, info):
        self.name = info.name.decode()
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


class Kernel:
    """A kernel of a loaded library; call it like a function."""

    def __init__(self, lib, name):
        try:
            info_fn = getattr(lib, f"einc_{name}_info")
            entry = getattr(lib, f"einc_{name}")
        except AttributeError:
            raise AttributeError(f"the library has no kernel `{name}`") from None
        info_fn.restype = ctypes.POINTER(KernelInfo)
        info_fn.argtypes = []
        entry.restype = ctypes.c_int32
        entry.argtypes = [ctypes.POINTER(Tensor), ctypes.c_int64]
        info = info_fn().contents
        if info.abi_version != ABI_VERSION:
            raise RuntimeError(f"kernel `{name}` uses ABI version {info.abi_version}; this "
                               f"module speaks version {ABI_VERSION}")
        self.name = info.name.decode()
        self.args = [Arg(info.args[i]) for i in range(info.nargs)]
        self.ninputs = info.ninputs
        self.dim_names = [info.dim_names[i].decode() for i in range(info.ndims)]
        self._entry = entry

    @property
    def inputs(self):
        """The input arguments, in order."""
        return self.args[:self.ninputs]

    @property
    def outputs(self):
        """The output arguments, in order."""
        return self.args[self.ninputs:]

    def __repr__(self):
        ins = ", ".join(a.name for a in self.inputs)
        outs = ", ".join(a.name for a in self.outputs)
        return f"<einc kernel {self.name}({ins}) -> ({outs})>"

    def call_descriptors(self, tensors, nargs=None):
        """Calls the entry point on raw descriptors and returns its status code (no
        exception): for tests and callers building descriptors themselves."""
        array = (Tensor * max(len(tensors), 1))(*tensors)
        return self._entry(array, len(tensors) if nargs is None else nargs)

    def _bind_dims(self, inputs):
        """Dims bound by the inputs' shapes, left to right, first binding wins (as the
        kernel binds them); inputs of the wrong rank bind nothing (the kernel rejects them)."""
        dims = {}
        for arg, a in zip(self.inputs, inputs):
            if a.ndim == len(arg.extents):
                for e, n in zip(arg.extents, a.shape):
                    if e < 0:
                        dims.setdefault(-e - 1, n)
        return dims

    def _allocate(self, inputs):
        dims = self._bind_dims(inputs)
        outs = []
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
            outs.append(np.empty(shape, dtype=arg.dtype))
        return outs

    def __call__(self, *inputs, out=None):
        """Runs the kernel on ``inputs`` and returns its output (a tuple when it has several).
        ``out`` gives the output arrays to write into (then they are what is returned)."""
        inputs = [a if isinstance(a, np.ndarray) else
                  np.asarray(a, dtype=arg.dtype if arg else None)
                  for a, arg in zip(inputs, self.inputs + [None] * len(inputs))]
        if out is None:
            # With the wrong number of inputs there is nothing sensible to allocate; the
            # kernel reports the count.
            outs = self._allocate(inputs) if len(inputs) == self.ninputs else []
        else:
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            if not all(isinstance(o, np.ndarray) for o in outs):
                raise TypeError("out= takes numpy arrays")
        descs, keep = [], []
        for a in list(inputs) + outs:
            t, k = descriptor(a)
            descs.append(t)
            keep.append(k)
        code = self.call_descriptors(descs)
        if code != 0:
            raise EincError(self.name, code)
        return outs[0] if len(outs) == 1 else tuple(outs)


class Library:
    """A loaded einc library; its kernels are attributes (``lib.attention``)."""

    def __init__(self, path):
        self.path = str(path)
        self._lib = ctypes.CDLL(self.path)
        try:
            version_fn = self._lib.einc_abi_version
        except AttributeError:
            raise OSError(f"{self.path} is not an einc library (no einc_abi_version)") from None
        version_fn.restype = ctypes.c_int32
        version_fn.argtypes = []
        self.abi_version = version_fn()
        if self.abi_version != ABI_VERSION:
            raise OSError(f"{self.path} has ABI version {self.abi_version}; this module "
                          f"speaks version {ABI_VERSION}")
        self._kernels = {}

    def kernel(self, name):
        """The kernel ``name`` (AttributeError when the library has none)."""
        if name not in self._kernels:
            self._kernels[name] = Kernel(self._lib, name)
        return self._kernels[name]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.kernel(name)


def load(path):
    """Loads the einc library at ``path``."""
    return Library(path)
