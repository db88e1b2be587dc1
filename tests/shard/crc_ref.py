#!/usr/bin/python3
"""Reference CRC-32 for the shard tests: prints zlib.crc32 of each file named, one hex value per line."""
import sys
import zlib

for path in sys.argv[1:]:
    with open(path, "rb") as f:
        print("%08x" % zlib.crc32(f.read()))
