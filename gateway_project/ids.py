"""Random hex ids (request, trace and span ids) from the OS's randomness, read in blocks.

Every request takes three such ids. `secrets.token_hex` reads each from the OS with its own
getrandom() call, which releases the GIL: with eight request threads per worker, each release is
a point where another thread takes the GIL and this request waits for it back. Here each thread
reads a block at once and hands out its bytes, each byte once; a forked child drops what its
parent read, so two workers never hand out the same id.
"""

from __future__ import annotations

import os
import secrets
import threading

from gateway_project import forks

_BLOCK_BYTES = 4096

_local = threading.local()


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as hex (as `secrets.token_hex(nbytes)`), from this thread's block."""
    if nbytes > _BLOCK_BYTES:
        return secrets.token_hex(nbytes)
    local = _local
    used = getattr(local, "used", _BLOCK_BYTES)
    if used + nbytes > _BLOCK_BYTES or local.generation != forks.generation:
        local.block = os.urandom(_BLOCK_BYTES)
        local.generation = forks.generation
        used = 0
    local.used = used + nbytes
    return local.block[used : used + nbytes].hex()
