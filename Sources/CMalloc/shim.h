// glibc's allocator tuning (mallopt), which Swift's Glibc module does not export.
#include <malloc.h>

/// Keeps freed blocks up to `mmap_bytes` in the heap (instead of fresh mmap'd pages each time) and
/// keeps up to `trim_bytes` of free heap instead of returning it to the kernel.
static inline void cmalloc_keep_large_blocks(int mmap_bytes, int trim_bytes) {
    mallopt(M_MMAP_THRESHOLD, mmap_bytes);
    mallopt(M_TRIM_THRESHOLD, trim_bytes);
}

/// Returns the free memory of every arena to the kernel (malloc_trim(0)); 1 when some was released.
static inline int cmalloc_release_free_memory(void) {
    return malloc_trim(0);
}
