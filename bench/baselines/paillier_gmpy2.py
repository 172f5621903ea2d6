#!/usr/bin/env python3
"""Baseline for PaillierBenchmark: FATE-style Paillier encryption with gmpy2 on one core.

Same algorithm as Fed's public-key path and as FATE's fate_paillier.raw_encrypt: g = n + 1,
c = (1 + m*n) * r^n mod n^2 with r uniform in [1, n). Prints JSON {"1024": ops_per_s, "2048": ...}.
usage: paillier_gmpy2.py SECONDS BITS...
"""
import json, secrets, sys, time
import gmpy2


def prime(bits):
    while True:
        c = gmpy2.mpz(secrets.randbits(bits) | (3 << (bits - 2)) | 1)
        if gmpy2.is_prime(c, 40):
            return c


def rate(bits, seconds):
    p, q = prime(bits // 2), prime(bits // 2)
    n = p * q
    n2 = n * n
    sysrand = secrets.SystemRandom()
    m = gmpy2.mpz(123456789)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        r = gmpy2.mpz(sysrand.randint(1, n - 1))
        obfuscator = gmpy2.powmod(r, n, n2)
        c = (n * m + 1) % n2 * obfuscator % n2
        done += 1
    return done / (time.perf_counter() - start)


if __name__ == "__main__":
    seconds = float(sys.argv[1])
    print(json.dumps({b: rate(int(b), seconds) for b in sys.argv[2:]}))
