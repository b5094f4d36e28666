// zlib (RFC 1950/1951), for the message archive: Debian's zlib1g-dev.
#include <zlib.h>
