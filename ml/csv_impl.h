// csv_impl.h: reaches libcsv's <csv.h>. Inside ml/ the compiler's include
// path lists this folder first, where our own csv.h would shadow libcsv's
// header of the same name; #include_next continues the search past ml/.
// Include it with angle brackets so it is found through that path.
#ifndef CANOPY_CSV_IMPL_H
#define CANOPY_CSV_IMPL_H

#include_next <csv.h>

#endif
