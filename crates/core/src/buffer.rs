//! [`Buffer`]: the zeroed, cache-line-aligned memory a state vector lives
//! in.
//!
//! On Linux, buffers of 1 MiB and more come straight from the kernel
//! (`mmap`) and go straight back when dropped (`munmap`); smaller ones, and
//! all of them elsewhere, come from the global allocator.
//!
//! Why not always the global allocator: allocators keep freed memory for a
//! while to reuse it (mimalloc, which the `kettle` binary uses, purges
//! after a delay). A server that runs job after job within a memory budget
//! then holds the states of finished jobs on top of the running ones:
//! measured with the reliability suite's flood of 64 MiB jobs under a
//! 160 MiB budget, peak resident memory grew by 168 MiB through mimalloc
//! and by 155 MiB with the delay off. Memory mapped for a state is
//! returned the moment the state is dropped, so the budget bounds what the
//! process holds, whatever allocator the program links.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::error::SimError;

/// Buffers from this size on are mapped from the kernel (Linux).
#[cfg(target_os = "linux")]
const MAP_FROM_BYTES: usize = 1 << 20;

/// `len` zero-initialised `T`s (plain numeric data whose all-zero bytes
/// are a valid value), aligned to `T`'s alignment.
pub(crate) struct Buffer<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    mapped: bool,
}

// SAFETY: a `Buffer` owns its memory exclusively, as a `Vec` does, and
// hands out references only through `&self`/`&mut self`.
#[allow(unsafe_code)]
unsafe impl<T: Copy + Send> Send for Buffer<T> {}
// SAFETY: as above; shared access is read-only.
#[allow(unsafe_code)]
unsafe impl<T: Copy + Sync> Sync for Buffer<T> {}

impl<T: Copy> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("mapped", &self.mapped)
            .finish()
    }
}

impl<T: Copy> Buffer<T> {
    fn layout(len: usize) -> Result<Layout, SimError> {
        let bytes = len as u128 * std::mem::size_of::<T>() as u128;
        match Layout::array::<T>(len) {
            Ok(layout) if layout.size() > 0 => Ok(layout),
            _ => Err(SimError::OutOfMemory { bytes }),
        }
    }

    /// `len` zeroed elements (`len > 0`, `T` not zero-sized).
    ///
    /// # Errors
    /// [`SimError::OutOfMemory`] if the memory cannot be had.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn zeroed(len: usize) -> Result<Self, SimError> {
        let layout = Self::layout(len)?;
        let oom = || SimError::OutOfMemory {
            bytes: layout.size() as u128,
        };
        #[cfg(target_os = "linux")]
        if layout.size() >= MAP_FROM_BYTES && layout.align() <= 4096 {
            // SAFETY: an anonymous private mapping of a non-zero length;
            // the kernel returns page-aligned (so `T`-aligned), zero-filled
            // memory or MAP_FAILED.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(oom());
            }
            let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(oom)?;
            return Ok(Buffer {
                ptr,
                len,
                mapped: true,
            });
        }
        // SAFETY: the layout has a non-zero size (checked in `layout`).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<T>();
        let ptr = NonNull::new(ptr).ok_or_else(oom)?;
        Ok(Buffer {
            ptr,
            len,
            mapped: false,
        })
    }

    /// A copy of this buffer.
    ///
    /// # Errors
    /// [`SimError::OutOfMemory`] if the memory cannot be had.
    #[allow(unsafe_code)]
    pub(crate) fn try_clone(&self) -> Result<Self, SimError> {
        // SAFETY: every byte is overwritten with a valid `T` at once.
        let mut copy = unsafe { Self::zeroed(self.len) }?;
        copy.copy_from_slice(self);
        Ok(copy)
    }
}

impl<T: Copy> Clone for Buffer<T> {
    /// As `Vec`'s: running out of memory aborts (use
    /// [`try_clone`](Buffer::try_clone) to handle it).
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(copy) => copy,
            Err(_) => handle_alloc_error(Self::layout(self.len).unwrap_or(Layout::new::<T>())),
        }
    }
}

impl<T: Copy> Deref for Buffer<T> {
    type Target = [T];

    #[allow(unsafe_code)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised `T`s that this buffer
        // owns until it is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for Buffer<T> {
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for Buffer<T> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let Ok(layout) = Self::layout(self.len) else {
            return;
        };
        #[cfg(target_os = "linux")]
        if self.mapped {
            // SAFETY: this exact range was mapped in `zeroed` and is
            // unmapped once. A failure would only leak the range.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), layout.size()) };
            return;
        }
        // SAFETY: allocated in `zeroed` by the global allocator with this
        // layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn zeroed(len: usize) -> Buffer<u64> {
        // SAFETY: zero is a valid u64.
        unsafe { Buffer::zeroed(len) }.unwrap()
    }

    #[test]
    fn small_and_mapped_buffers_start_zeroed_and_copy() {
        for len in [1, 1000, (4 << 20) / 8 + 3] {
            let mut b = zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            b[len - 1] = 7;
            let c = b.clone();
            assert_eq!((c[len - 1], c.len()), (7, len));
            #[cfg(target_os = "linux")]
            assert_eq!(b.mapped, len * 8 >= MAP_FROM_BYTES, "{len}");
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn impossible_sizes_are_errors() {
        // SAFETY: zero is a valid u64.
        let r = unsafe { Buffer::<u64>::zeroed(usize::MAX / 4) };
        assert!(matches!(r, Err(SimError::OutOfMemory { .. })));
    }
}
