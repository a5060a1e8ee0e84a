// oneDNN (Debian's libdnnl-dev, built on GNU OpenMP) for direct convolutions.
#include <oneapi/dnnl/dnnl.h>

// libgomp's per-thread team size (omp.h is GCC's and not on clang's include path). Convolutions
// run with a team of 1 on each of our own workers: no OpenMP threads ever start.
int omp_get_max_threads(void);
void omp_set_num_threads(int count);
