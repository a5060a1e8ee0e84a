// OpenBLAS's CBLAS interface. pkg-config (openblas) puts the pthread variant's include dir first,
// so this resolves to the cblas.h that matches the library we link.
#include <cblas.h>
