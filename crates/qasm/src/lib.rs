//! Circuit front ends (work in progress).
