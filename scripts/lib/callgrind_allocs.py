#!/usr/bin/env python3
"""Per-unit cost from one callgrind dump: instructions, calls into the malloc family, and the call
sites that allocate most. A call site is found by walking up from the allocator through the
plumbing between it and the code that asked (the Swift runtime's allocation entry points,
OpenSSL's CRYPTO_malloc, nghttp2's mem wrappers, the standard library's buffer growth), sharing
each plumbing function's calls among its callers in proportion to theirs (callgrind keeps one level
of callers, not whole stacks).
    callgrind_allocs.py LABEL UNITS CALLGRIND_FILE [TOP]
"""
import collections
import re
import subprocess
import sys

ALLOCATORS = {"malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"}
# Functions that only pass an allocation on: a site is the first caller outside these.
PLUMBING_EXACT = {
    "swift_slowAlloc", "swift_allocObject", "_swift_allocObject_", "swift_allocBox", "swift_allocEmptyBox",
    "CRYPTO_malloc", "CRYPTO_zalloc", "CRYPTO_realloc", "CRYPTO_clear_realloc", "CRYPTO_memdup", "CRYPTO_strdup",
    "CRYPTO_strndup", "nghttp2_mem_malloc", "nghttp2_mem_calloc", "nghttp2_mem_realloc", "default_malloc",
    "default_calloc", "default_realloc", "operator new(unsigned long)", "_Znwm",
}
PLUMBING_PATTERNS = [re.compile(p) for p in (
    r"_allocateUninitialized", r"_ContiguousArrayBuffer.*(init|_copyToNewBuffer|_consumeAndCreateNew)",
    r"_allocateBufferUninitialized", r"_copyToNewBuffer", r"_createNewBuffer", r"reserveCapacity", r"_growArrayCapacity",
    r"_StringGuts\.(grow|_allocateForDeconstruct|prepareForAppendInPlace)", r"__StringStorage\.(create|_allocate)",
    r"_ArrayBufferProtocol", r"ManagedBuffer.*create", r"_NativeDictionary.*(resize|copy|init)", r"_DictionaryStorage.*(allocate|resize|copy)",
    r"_NativeSet.*(resize|copy|init)", r"_SetStorage.*(allocate|resize|copy)", r"Array.*append", r"String.*append",
    r"swift_allocObject", r"OPENSSL_sk_", r"^sk_", r"BUF_MEM_grow", r"_allocateStringStorage", r"H2FrameBufferMemory",
    r"^nghttp2_mem_",
)]


def demangle(names):
    try:
        out = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.splitlines()
        return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def parse(path):
    """Self instructions per function, total instructions, and call counts caller -> callee."""
    names = {}
    self_cost = collections.Counter()
    calls = collections.Counter()
    total = 0
    current = None
    pending = None     # (callee, count): the next cost line is that call's inclusive cost, not self cost
    ref = re.compile(r"\((\d+)\)(?: (.*))?")

    def name(spec):
        m = ref.match(spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    callee = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                current = name(line[3:])
            elif line.startswith("cfn="):
                callee = name(line[4:])
            elif line.startswith("calls="):
                pending = (callee, int(line[6:].split()[0]))
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                cost = int(line.split()[-1]) if len(line.split()) > 1 else 0
                if pending:
                    calls[(current, pending[0])] += pending[1]
                    pending = None
                else:
                    self_cost[current] += cost
            elif line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return self_cost, calls, total or sum(self_cost.values())


def main():
    label, units, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    unit = sys.argv[5] if len(sys.argv) > 5 else "tunnel"
    if units <= 0:
        print(f"{label}: no {unit}s counted")
        return 1
    self_cost, calls, total = parse(path)
    callers = collections.defaultdict(collections.Counter)
    for (caller, callee), n in calls.items():
        callers[callee][caller] += n
    allocs = sum(n for (caller, callee), n in calls.items() if callee in ALLOCATORS and caller not in ALLOCATORS)
    frees = sum(n for (caller, callee), n in calls.items() if callee == "free" and caller != "free")
    every = sorted({f for pair in calls for f in pair})
    readable = demangle(every)

    def plumbing(fn):
        text = readable.get(fn, fn)
        return fn in PLUMBING_EXACT or text in PLUMBING_EXACT or any(p.search(text) for p in PLUMBING_PATTERNS)

    # Walk each allocation up through the plumbing, sharing counts in proportion to callers' calls.
    sites = collections.Counter()
    frontier = collections.Counter()
    for allocator in ALLOCATORS:
        for caller, n in callers[allocator].items():
            if caller not in ALLOCATORS:
                frontier[caller] += n
    for _ in range(8):
        nxt = collections.Counter()
        for fn, n in frontier.items():
            up = callers.get(fn)
            if plumbing(fn) and up:
                whole = sum(up.values())
                for caller, k in up.items():
                    nxt[caller] += n * k / whole
            else:
                sites[fn] += n
        frontier = nxt
        if not frontier:
            break
    for fn, n in frontier.items():
        sites[fn] += n
    print(f"{label}: {units} {unit}s; per {unit} {total / units:,.0f} instructions, {allocs / units:.1f} allocations, {frees / units:.1f} frees")
    for fn, n in sites.most_common(top):
        if n / units < 0.05:
            break
        print(f"    {n / units:5.2f}  {readable.get(fn, fn)[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
