#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""phyr-inspect against processes of known layout (tests/inspectee.c), read
back through its JSON and checked against what the kernel says of them
(VmPin, the ring's fd, the addresses the process printed).

    test_inspect.py BINDIR TOOL LIBDIR

BINDIR holds inspectee; LIBDIR the staged libphyr.so.0 (inspectee links it
but calls nothing: the tool needs no libphyr in its target).  As root, the
unprivileged cases run as uid 65534 (setpriv).  Exits 0, 1 (failed) or 77
(skipped, saying why).
"""
import json
import os
import subprocess
import sys

BINDIR, TOOL, LIBDIR = sys.argv[1:4]
MiB = 1 << 20
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def kernel_at_least(major, minor):
    rel = os.uname().release.split(".")
    return (int(rel[0]), int(rel[1].split("-")[0])) >= (major, minor)


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--inh-caps=+ipc_lock", "--ambient-caps=+ipc_lock"]


class Inspectee:
    """inspectee running with its layout printed; gone when closed."""

    def __init__(self, *args, nobody=False):
        cmd = ([*AS_NOBODY] if nobody else []) + [os.path.join(BINDIR, "inspectee"), *args]
        env = dict(os.environ, LD_LIBRARY_PATH=LIBDIR)
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, text=True)
        self.regions = {}
        for line in self.p.stdout:
            line = line.strip()
            if line == "ready":
                break
            name, a, b = line.split()
            self.regions[name] = (int(a), int(b))
        else:
            rc, err = self.p.wait(), self.p.stderr.read()
            if rc == 77:  # the inspectee could not make its layout (no THP): say so
                print(err.strip(), file=sys.stderr)
                sys.exit(77)
            raise SystemExit("inspectee %s ended before it was ready (exit %s): %s" % (args, rc, err))
        self.pid = self.p.pid

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def inspect(pid, *args, nobody=False, where=None):
    cmd = ([*AS_NOBODY] if nobody else []) + [TOOL, *args, str(pid)] + ([where] if where else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def inspect_json(pid, *args, nobody=False, where=None):
    rc, out, err = inspect(pid, "--json", *args, nobody=nobody, where=where)
    if rc != 0:
        raise SystemExit("phyr-inspect --json %d failed (%d): %s" % (pid, rc, err))
    return json.loads(out)


def mapping_at(report, addr):
    found = [m for m in report["mappings"] if m["start"] <= addr < m["end"]]
    check(len(found) == 1, "one mapping holds %#x (found %d)" % (addr, len(found)))
    return found[0] if found else {}


def numa_maps_bytes(pid, start):
    """The bytes per node numa_maps gives the VMA at start ({"0": n}), or
    None where it cannot be read."""
    try:
        lines = open("/proc/%d/numa_maps" % pid).read().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if f and int(f[0], 16) == start:
            kib = int(next((x.split("=")[1] for x in f if x.startswith("kernelpagesize_kB=")), "4"))
            return {x[1:].split("=")[0]: int(x.split("=")[1]) * kib * 1024
                    for x in f if x.startswith("N") and "=" in x}
    return None


def khugepaged_collapses():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed") as f:
            return int(f.read())
    except OSError:
        return 0


def layouts_unraced(nobody):
    """The layouts, again where khugepaged collapsed the inspectee's split
    extents meanwhile (its counter moved): the layout is not the one made."""
    global failures
    for attempt in range(3):
        before, k = list(failures), khugepaged_collapses()
        layouts(nobody)
        if khugepaged_collapses() == k or failures == before:
            return
        print("note: khugepaged collapsed pages during the inspection: again", file=sys.stderr)
        failures = before
    check(False, "khugepaged collapsed pages during three inspections running")


def layouts(nobody):
    who = "uid 65534" if nobody else "uid %d" % os.getuid()
    t = Inspectee(nobody=nobody)
    try:
        d = inspect_json(t.pid, nobody=nobody)
        check(d["pid"] == t.pid and d["command"] == "inspectee", who + ": pid and command")
        check(d["thp"]["process_disabled"] is False, who + ": THP allowed for the process")
        for key in ("start", "end", "name", "huge_bytes", "hugetlb_bytes", "base_bytes", "nofolio_bytes", "locked",
                    "thp_eligible", "why_not_huge"):
            check(all(key in m for m in d["mappings"]), who + ": every mapping has " + key)
        check(all(isinstance(m["start"], int) and m["start"] < m["end"] for m in d["mappings"]),
              who + ": integer, ordered bounds")
        # Resident bytes per node: each mapping's add up to what it holds
        # on a machine with one node (elsewhere numa_maps counts them; the
        # THP region below is checked against it either way).
        one_node = open("/sys/devices/system/node/has_memory").read().strip() in ("0", "")
        if one_node and "node-query" not in os.environ.get("PHYR_FORCE_FALLBACK", ""):
            bad = [m for m in d["mappings"]
                   if sum(m["nodes"].values()) != m["huge_bytes"] + m["hugetlb_bytes"] + m["base_bytes"]]
            check(not bad, who + ": nodes add up to the resident bytes: %r" % bad[:2])
        check(sum(d["nodes"].values()) == sum(sum(m["nodes"].values()) for m in d["mappings"]),
              who + ": the process's total per node")
        a, n = t.regions["thp"]
        m = mapping_at(d, a)
        counted = numa_maps_bytes(t.pid, m["start"])
        check(counted is None or m["nodes"] == counted,
              who + ": THP mapping per node %r, numa_maps %r" % (m["nodes"], counted))

        a, n = t.regions["thp"]
        m = mapping_at(d, a)
        # Extents 1 and 3 hold a stray page each: their huge pages are
        # mapped by PTEs now, all 512 pages still present.
        check(m.get("huge_bytes") == 4 * MiB and m.get("base_bytes") == 4 * MiB,
              who + ": THP with two split extents: %s huge, %s base" % (m.get("huge_bytes"), m.get("base_bytes")))
        check(m.get("thp_eligible") is True, who + ": THP mapping eligible")
        check("MADV_COLLAPSE" in (m.get("why_not_huge") or ""), who + ": split THP: %r" % m.get("why_not_huge"))

        a, n = t.regions["nohuge"]
        m = mapping_at(d, a)
        check(m.get("base_bytes") == n and m.get("huge_bytes") == 0 and m.get("thp_eligible") is False,
              who + ": MADV_NOHUGEPAGE mapping all 4 KiB, not eligible")
        check("MADV_NOHUGEPAGE" in (m.get("why_not_huge") or ""), who + ": nohuge: %r" % m.get("why_not_huge"))

        a, n = t.regions["small"]
        m = mapping_at(d, a)
        check("too small" in (m.get("why_not_huge") or ""), who + ": 1 MiB mapping: %r" % m.get("why_not_huge"))

        a, n = t.regions["locked"]
        check(mapping_at(d, a).get("locked") is True, who + ": mlocked mapping locked")
        check(mapping_at(d, t.regions["thp"][0]).get("locked") is False, who + ": THP mapping not locked")

        if "hugetlb" in t.regions:
            a, n = t.regions["hugetlb"]
            m = mapping_at(d, a)
            check(m.get("hugetlb_bytes") == n and m.get("base_bytes") == 0 and m.get("why_not_huge") is None,
                  who + ": hugetlb mapping: %s" % m)
        else:
            print("SKIP hugetlb rows: no 2 MiB hugetlb pages reserved", file=sys.stderr)

        m = mapping_at(d, t.regions["odd"][0])
        check(m.get("name", "").startswith("/memfd:odd \x1b[31m name"), who + ": a name with spaces and ESC: %r" % m.get("name"))

        vvar = [m for m in d["mappings"] if m["name"] == "[vvar]"]
        check(len(vvar) == 1 and vvar[0]["nofolio_bytes"] == vvar[0]["end"] - vvar[0]["start"],
              who + ": [vvar] has no folio")

        if "ring_fd" not in t.regions:
            print("SKIP buffer rows: io_uring unavailable to the inspectee", file=sys.stderr)
            return
        fd, twin = t.regions["ring_fd"]
        rings = [r for r in d["io_uring"] if r["fd"] == fd]
        check(len(rings) == 1 and len(d["io_uring"]) == 1, who + ": exactly the inspectee's ring: %s" % d["io_uring"])
        check(rings and rings[0]["fds"] == sorted([fd, twin]), who + ": the ring's two descriptors are one ring")
        if not rings:
            return
        bufs = rings[0]["buffers"]
        check([b["index"] for b in bufs] == [0, 1], who + ": buffer indices %s" % [b["index"] for b in bufs])
        check([(b["addr"], b["len"]) for b in bufs] == [t.regions["buf0"], t.regions["buf1"]],
              who + ": buffer addresses and lengths")
        if len(bufs) == 2:
            several = kernel_at_least(6, 11)
            b0, b1 = bufs
            check(b0["coalesced"] is several and b0["kernel_entries"] == (2 if several else 1024),
                  who + ": all-THP buffer: coalesced %s, %d entries" % (b0["coalesced"], b0["kernel_entries"]))
            check(b1["coalesced"] is False and b1["kernel_entries"] == 1024,
                  who + ": half-THP buffer: coalesced %s, %d entries" % (b1["coalesced"], b1["kernel_entries"]))
            # Its 4 KiB half is MADV_NOHUGEPAGE: the advice says that comes first.
            check("+0x200000" in (b1["advice"] or "") and "MADV_NOHUGEPAGE" in b1["advice"],
                  who + ": advice names the 4 KiB pages and their mapping: %r" % b1["advice"])
            vmpin = t.regions["vmpin"][0]
            charge = b0["lock_charge"] + b1["lock_charge"]
            check(charge == vmpin, who + ": lock charge %d against the kernel's VmPin %d" % (charge, vmpin))

        rc, out, err = inspect(t.pid, "--io-uring", nobody=nobody)
        check("\x1b" not in out and "odd \\x1b[31m name" in out, who + ": the table escapes control characters")
        if "hidden_ring" in t.regions:
            check(d["unlisted_rings"] == [t.regions["hidden_ring"][0]], who + ": a ring with no descriptor: %s"
                  % d["unlisted_rings"])
            check("no descriptor of the process names it" in out, who + ": the table names the unlisted ring")
        check(rc == 0 and ("io_uring fds %d, %d (one ring): 2 registered buffers" % (fd, twin)) in out and "does not coalesce" in out
              and "not huge: MADV_NOHUGEPAGE" in out, who + ": the table:\n" + out + err)

        a, n = t.regions["thp"]
        d = inspect_json(t.pid, nobody=nobody, where="%#x+4K" % (a + 100))
        check(len(d["mappings"]) == 1 and d["mappings"][0]["start"] == a,
              who + ": ADDR+LEN: only the mapping there: %s" % [m["start"] for m in d["mappings"]])
    finally:
        t.close()


def prctl_disabled():
    t = Inspectee("prctl")
    try:
        d = inspect_json(t.pid)
        check(d["thp"]["process_disabled"] is True, "prctl: process_disabled")
        m = mapping_at(d, t.regions["prctl"][0])
        check(m.get("huge_bytes") == 0 and "PR_SET_THP_DISABLE" in (m.get("why_not_huge") or ""),
              "prctl: %r" % m.get("why_not_huge"))
    finally:
        t.close()


def no_libphyr_target():
    p = subprocess.Popen(["sleep", "30"])
    try:
        d = inspect_json(p.pid)
        check(d["command"] == "sleep" and len(d["mappings"]) > 3 and d["io_uring"] == [],
              "a process without libphyr is inspected")
    finally:
        p.kill()
        p.wait()


def refusals():
    # A zombie has no memory to inspect.
    zombie = os.fork()
    if zombie == 0:
        os._exit(0)
    while open("/proc/%d/stat" % zombie).read().split(") ")[1][0] != "Z":
        pass
    rc, out, err = inspect(zombie)
    os.waitpid(zombie, 0)
    check(rc == 1 and "no memory" in err, "a zombie: %d %r" % (rc, err))
    # A report that cannot be written is a failure.
    with open("/dev/full", "w") as full:
        rc = subprocess.run([TOOL, str(os.getpid())], stdout=full, stderr=subprocess.PIPE).returncode
    check(rc == 1, "writing to /dev/full fails the run: exit %d" % rc)
    dead = subprocess.Popen(["true"])
    dead.wait()
    rc, out, err = inspect(dead.pid)
    check(rc == 1 and "no process %d" % dead.pid in err, "a pid that does not exist: %d %r" % (rc, err))
    rc, out, err = inspect(1, "--bogus")
    check(rc == 2 and "unknown option" in err, "a bad option: %d %r" % (rc, err))
    rc = subprocess.run([TOOL, "notapid"], capture_output=True, text=True).returncode
    check(rc == 2, "a pid that is not a number")
    if os.getuid() != 0:
        print("SKIP another user's process: refusal needs root to make one", file=sys.stderr)
        return
    t = Inspectee()
    try:
        rc, out, err = inspect(t.pid, "--io-uring", nobody=True)
        check(rc == 1 and "PTRACE_MODE_READ" in err and "permission denied" in err and out == "",
              "uid 65534 on root's process refused naming the permission: %d %r" % (rc, err))
    finally:
        t.close()


layouts_unraced(False)
if os.getuid() == 0:
    layouts_unraced(True)
else:
    print("SKIP running as another user: needs root", file=sys.stderr)
prctl_disabled()
no_libphyr_target()
refusals()
if failures:
    print("%d checks failed" % len(failures))
    sys.exit(1)
print("ok")
