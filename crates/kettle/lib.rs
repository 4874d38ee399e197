//! Kettle facade.
