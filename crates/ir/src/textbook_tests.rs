//! Every standard gate against its textbook matrix (filled in below).
