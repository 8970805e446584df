#!/usr/bin/env python3
"""Builds test layers, including hostile ones, from a line spec on stdin.

    mktar.py OUT gzip|none|zstd-raw  < spec

Each line: TYPE|NAME|key=value|...  (TYPE: file dir symlink hardlink chr blk
fifo).  Keys: mode (octal), uid, gid, mtime, data (text), zeros (that many
zero bytes of data), target (symlink/hardlink), major, minor,
xattr.NAME=VALUE.  Names are written verbatim ("../x", "/abs" included).
"none" writes a plain tar; zstd layers are compressed by the C tests.
"""
import gzip
import io
import sys
import tarfile

TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.n = n

    def readinto(self, b):
        k = min(len(b), self.n)
        b[:k] = bytes(k)
        self.n -= k
        return k

    def readable(self):
        return True


def main():
    out, comp = sys.argv[1], sys.argv[2]
    raw = gzip.open(out, "wb", compresslevel=1) if comp == "gzip" else open(out, "wb")
    with raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for line in sys.stdin.read().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("|")
            ti = tarfile.TarInfo(parts[1])
            ti.type = TYPES[parts[0]]
            ti.mode = 0o755 if ti.type == tarfile.DIRTYPE else 0o644
            ti.mtime = 1700000000
            data = None
            for kv in parts[2:]:
                k, _, v = kv.partition("=")
                if k == "mode":
                    ti.mode = int(v, 8)
                elif k in ("uid", "gid", "major", "minor"):
                    setattr(ti, {"major": "devmajor", "minor": "devminor"}.get(k, k), int(v))
                elif k == "mtime":
                    ti.mtime = float(v)
                elif k == "data":
                    data = v.encode().decode("unicode_escape").encode("latin-1")
                elif k == "zeros":
                    data = int(v)
                elif k == "target":
                    ti.linkname = v
                elif k.startswith("xattr."):
                    ti.pax_headers["SCHILY.xattr." + k[6:]] = v.encode().decode("unicode_escape")
            if isinstance(data, int):
                ti.size = data
                tf.addfile(ti, Zeros(data))
            elif data is not None:
                ti.size = len(data)
                # tarfile omits the data of non-regular entries; write it
                # by hand for "hardlink with data" (a libarchive attack).
                if ti.type != tarfile.REGTYPE:
                    ti.pax_headers["comment"] = "entry with data"  # pax: data is read
                    buf = bytearray(ti.tobuf(tf.format, tf.encoding, tf.errors))
                    h = len(buf) - 512  # tarfile forces size 0 on links: patch it
                    buf[h + 124:h + 136] = b"%011o\0" % len(data)
                    buf[h + 148:h + 156] = b" " * 8
                    buf[h + 148:h + 156] = b"%06o\0 " % sum(buf[h:h + 512])
                    buf = bytes(buf)
                    tf.fileobj.write(buf)
                    tf.offset += len(buf)
                    tf.fileobj.write(data)
                    pad = (512 - len(data) % 512) % 512
                    tf.fileobj.write(b"\0" * pad)
                    tf.offset += len(data) + pad
                    tf.members.append(ti)
                else:
                    tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)


if __name__ == "__main__":
    main()
