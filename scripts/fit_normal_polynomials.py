"""Fits the polynomials of the float32 normal draws in csrc/philox_normal.h.

    python scripts/fit_normal_polynomials.py

Weighted least squares at Chebyshev nodes, in 50-digit arithmetic (close to
minimax), of the relative error of the whole function:
  ln m  = 2s + s·z·P(z),        z = s², |s| <= (√2-1)/(√2+1)   (degree 4)
  sin x = x + x³·S(x²),         |x| <= π/4                     (degree 4)
  cos x = 1 - x²/2 + x⁴·C(x²),  |x| <= π/4                     (degree 3)
Prints the coefficients and the largest relative error on a fine grid.
"""
import mpmath as mp

mp.mp.dps = 50
NODES = 400


def fit(func, high, degree, weight):
    """Coefficients c_0..c_degree of sum c_j z^j ≈ func(z) on [0, high], residuals scaled by weight."""
    nodes = [high / 2 * (1 + mp.cos(mp.pi * (i + mp.mpf(1) / 2) / NODES)) for i in range(NODES)]
    design = mp.matrix(NODES, degree + 1)
    target = mp.matrix(NODES, 1)
    for i, z in enumerate(nodes):
        for j in range(degree + 1):
            design[i, j] = z**j * weight(z)
        target[i] = func(z) * weight(z)
    solution = mp.qr_solve(design, target)[0]
    return [solution[j] for j in range(degree + 1)]


def polynomial(coefficients, z):
    return sum(c * z**j for j, c in enumerate(coefficients))


def worst_relative_error(exact, approx, low, high, points=5000):
    grid = [low + (high - low) * mp.mpf(i) / points for i in range(points + 1)]
    return max(abs(approx(x) / exact(x) - 1) for x in grid if x != 0)


def report(name, coefficients, exact, approx, low, high):
    error = worst_relative_error(exact, approx, low, high)
    print(f"{name}: max relative error {mp.nstr(error, 3)} (2^{mp.nstr(mp.log(error, 2), 4)})")
    for c in coefficients:
        print(f"  {mp.nstr(c, 20)}")


def main():
    s_max = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
    log_p = fit(lambda z: (2 * mp.atanh(mp.sqrt(z)) - 2 * mp.sqrt(z)) / (mp.sqrt(z) * z), s_max**2, 4,
                lambda z: mp.sqrt(z) * z / (2 * mp.atanh(mp.sqrt(z))))
    report("P (ln m = 2 atanh s)", log_p, lambda s: 2 * mp.atanh(s),
           lambda s: 2 * s + s * s * s * polynomial(log_p, s * s), mp.mpf(1e-6), s_max)

    x_max = mp.pi / 4
    sin_s = fit(lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (mp.sqrt(z) * z), x_max**2, 4,
                lambda z: mp.sqrt(z) * z / mp.sin(mp.sqrt(z)))
    report("S (sin)", sin_s, mp.sin, lambda x: x + x**3 * polynomial(sin_s, x * x), mp.mpf(1e-6), x_max)

    cos_c = fit(lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z), x_max**2, 3,
                lambda z: z * z / mp.cos(mp.sqrt(z)))
    report("C (cos)", cos_c, mp.cos, lambda x: 1 - x * x / 2 + x**4 * polynomial(cos_c, x * x), mp.mpf(0), x_max)


if __name__ == "__main__":
    main()
