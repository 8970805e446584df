#!/usr/bin/env python3
"""Canonical listing of a directory tree, to compare unpackers.

    treecmp.py list DIR [--mtime | --mtime-nondir] [--no-root] [--ignore-xattr PREFIX]...
    treecmp.py cmp A B [same options]      exit 1 and a diff when different

One line per path (sorted, relative, "." for the root):
path type mode uid gid size sha256 link=target rdev=maj,min xattrs hardlink
Hardlinked files are tagged with the first path (sorted) of their inode, so
a listing also shows which names share an inode (only names inside the
tree count: st_nlink may include names an overlay whiteout hides).  Directory sizes are not
listed (filesystem-dependent); mtimes only with --mtime, or with
--mtime-nondir for everything but directories and symlinks (a directory's
mtime records when an unpacker last wrote into it, which differs between
correct unpackers).
"""
import difflib
import hashlib
import os
import stat
import sys


def listing(root, mtime=False, no_root=False, ignore=(), mtime_nondir=False):
    lines = []
    first_of_inode = {}
    paths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for n in dirnames + filenames:
            paths.append(os.path.join(dirpath, n))
    paths.sort()
    if not no_root:
        paths.insert(0, root)
    # names per inode among the listed paths: st_nlink also counts names
    # outside the tree (e.g. a name hidden by an overlay whiteout)
    names_of = {}
    for p in paths:
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            names_of[(st.st_dev, st.st_ino)] = names_of.get((st.st_dev, st.st_ino), 0) + 1
    for p in paths:
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        m = st.st_mode
        kind = ("dir" if stat.S_ISDIR(m) else "reg" if stat.S_ISREG(m) else
                "lnk" if stat.S_ISLNK(m) else "chr" if stat.S_ISCHR(m) else
                "blk" if stat.S_ISBLK(m) else "fifo" if stat.S_ISFIFO(m) else "sock")
        f = [rel, kind, "%04o" % stat.S_IMODE(m), str(st.st_uid), str(st.st_gid)]
        if stat.S_ISREG(m):
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            f += [str(st.st_size), h.hexdigest()[:16]]
            key = (st.st_dev, st.st_ino)
            if names_of.get(key, 0) > 1:
                first_of_inode.setdefault(key, rel)
                f.append("hl=" + first_of_inode[key])
        if stat.S_ISLNK(m):
            f.append("link=" + os.readlink(p))
        if stat.S_ISCHR(m) or stat.S_ISBLK(m):
            f.append("rdev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        try:
            names = sorted(os.listxattr(p, follow_symlinks=False))
        except OSError:
            names = []
        for x in names:
            if any(x.startswith(i) for i in ignore):
                continue
            v = os.getxattr(p, x, follow_symlinks=False)
            f.append("x:%s=%s" % (x, v.hex()))
        if (mtime or (mtime_nondir and not stat.S_ISDIR(m))) and not stat.S_ISLNK(m):
            f.append("mtime=%d" % st.st_mtime_ns)
        lines.append(" ".join(f))
    return lines


def main(argv):
    opts = {"mtime": False, "no_root": False, "ignore": [], "mtime_nondir": False}
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--mtime":
            opts["mtime"] = True
        elif a == "--mtime-nondir":
            opts["mtime_nondir"] = True
        elif a == "--no-root":
            opts["no_root"] = True
        elif a == "--ignore-xattr":
            i += 1
            opts["ignore"].append(argv[i])
        else:
            args.append(a)
        i += 1
    kw = dict(mtime=opts["mtime"], no_root=opts["no_root"], ignore=tuple(opts["ignore"]),
              mtime_nondir=opts["mtime_nondir"])
    if args and args[0] == "list" and len(args) == 2:
        print("\n".join(listing(args[1], **kw)))
        return 0
    if args and args[0] == "cmp" and len(args) == 3:
        a = listing(args[1], **kw)
        b = listing(args[2], **kw)
        if a == b:
            return 0
        sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(a, b, args[1], args[2], lineterm=""))
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
