"""Summarise a py-spy raw profile (collapsed stacks): where the policy service spends its CPU."""

import collections
import sys


def main(path: str) -> None:
    self_t, incl, total = collections.Counter(), collections.Counter(), 0
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"samples: {total}\n-- self time")
    for f, n in self_t.most_common(20):
        print(f"{100 * n / total:5.1f}%  {f}")
    print("-- inclusive, relaygate and library frames")
    for f, n in incl.most_common(300):
        if any(k in f for k in ("extproc/", "evidence/", "rfc8785", "grpc/", "sqlite", "regorus", "cryptography")):
            print(f"{100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/extproc-profile.txt")
