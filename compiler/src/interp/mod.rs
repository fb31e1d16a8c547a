//! The reference interpreter of the tensor IR: the oracle that every compiled path is tested
//! against. Simple and obviously correct rather than fast.
