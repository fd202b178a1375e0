/* scalapack.h: the BLACS, PBLAS and ScaLAPACK routines finemask calls, as
 * Debian's libscalapack-openmpi exports them (it ships no C header). The
 * Fortran ones take every argument by pointer; integers are C ints (the
 * library's default 32-bit INTEGER). A descriptor is 9 ints (DESC_*). */
#ifndef FM_SCALAPACK_H
#define FM_SCALAPACK_H

#include <mpi.h>

/* Fields of a dense block-cyclic array descriptor (ScaLAPACK's DTYPE_ = 1). */
enum { FM_DESC_DTYPE, FM_DESC_CTXT, FM_DESC_M, FM_DESC_N, FM_DESC_MB, FM_DESC_NB, FM_DESC_RSRC, FM_DESC_CSRC,
       FM_DESC_LLD, FM_DESC_LEN };

/* BLACS (C interface). */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);

/* ScaLAPACK tools. */
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);

/* PBLAS: C = alpha op(A) op(B) + beta C on submatrices (1-based ia, ja, ...). */
void psgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const float *alpha,
             const float *a, const int *ia, const int *ja, const int *desca, const float *b, const int *ib,
             const int *jb, const int *descb, const float *beta, float *c, const int *ic, const int *jc,
             const int *descc);

/* Copy an m x n submatrix of A to B, any two distributions; ictxt is a
 * context holding every process of both (desc CTXT -1 where a process holds
 * no part of that matrix). */
void psgemr2d_(const int *m, const int *n, const float *a, const int *ia, const int *ja, const int *desca, float *b,
               const int *ib, const int *jb, const int *descb, const int *ictxt);

#endif
