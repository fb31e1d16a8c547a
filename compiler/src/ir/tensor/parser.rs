//! Reads the text written by [`super::printer`] back into a [`super::Module`].
