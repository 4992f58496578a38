"""Compiled (numba) kernels of the teleop solvers: a whole hand solve is one native call.

Why: `teleop.fastkin` brought a hand solve down to ~35 small numpy calls, and at that size the calls are the
cost. At the control loop's 50 Hz cadence they cost ~2x what they cost back to back (measured: the mapper
takes 1.0-1.5 ms per tick back to back, 2.4-2.8 ms paced at 20 ms), because every tick starts with cold
caches and branch predictors and each numpy call walks a long dispatch path. A compiled kernel runs the
same arithmetic in a few microseconds of straight-line code.

The maths is `FastHand.solve`'s, step for step: forward kinematics through the mimic couplings, the
palm-frame residual of the tip / middle / pinch vectors, its analytic Jacobian, and Levenberg-Marquardt
with the same damping schedule, box clamp, prior rows and stopping rule. Only the floating-point summation
order differs from numpy's BLAS products (tests/test_teleop_fastkin.py bounds the difference).

Compiled on first use and cached on disk (numba's `cache=True`, beside this file): a fresh checkout pays
~6 s once, later processes load the machine code (~0.8 s). `teleop.fastkin` imports this module only when a
compiled solver is built (`compiled_available()` asks without importing numba) and keeps its numpy path where
numba is not installed.
"""
from __future__ import annotations

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def _fk(q, table, parents, m, b, direct, tf):
    """tf[i] (4x4) = pose of joint i's child frame in the base frame; tf[n] stays the identity."""
    n = parents.shape[0]
    local = np.empty(16)
    for i in range(n):
        if direct:
            th = q[i]
        else:
            th = b[i]
            for a in range(q.shape[0]):
                th += m[i, a] * q[a]
        s = math.sin(th)
        c = math.cos(th)
        for e in range(16):
            local[e] = table[i, 0, e] + s * table[i, 1, e] + c * table[i, 2, e]
        p = parents[i]
        for r in range(4):
            for col in range(4):
                if p < 0:
                    tf[i, r, col] = local[4 * r + col]
                else:
                    acc = 0.0
                    for t in range(4):
                        acc += tf[p, r, t] * local[4 * t + col]
                    tf[i, r, col] = acc


@_jit
def _points(tf, slots, off_h, pts):
    """pts[3 k + a] = point k (its joint's frame, homogeneous offset) in the base frame."""
    for k in range(slots.shape[0]):
        sl = slots[k]
        for a in range(3):
            acc = 0.0
            for c in range(4):
                acc += tf[sl, a, c] * off_h[k, c]
            pts[3 * k + a] = acc


@_jit
def _residual(res_map, pts, neg_shift, out, rows):
    for r in range(rows):
        acc = neg_shift[r]
        for j in range(pts.shape[0]):
            acc += res_map[r, j] * pts[j]
        out[r] = acc


@_jit
def _jacobian(tf, pts, axes, coupling, res_map, dp, out, rows):
    """out[:rows] = res_map @ d pts / d q, with d p_k / d q_a = sum_j coupling[k, j, a] axis_j x (p_k - pos_j)."""
    k_n, n, dof = coupling.shape
    for i in range(dp.shape[0]):
        for a in range(dof):
            dp[i, a] = 0.0
    for j in range(n):
        ax0 = tf[j, 0, 0] * axes[j, 0] + tf[j, 0, 1] * axes[j, 1] + tf[j, 0, 2] * axes[j, 2]
        ax1 = tf[j, 1, 0] * axes[j, 0] + tf[j, 1, 1] * axes[j, 1] + tf[j, 1, 2] * axes[j, 2]
        ax2 = tf[j, 2, 0] * axes[j, 0] + tf[j, 2, 1] * axes[j, 1] + tf[j, 2, 2] * axes[j, 2]
        for k in range(k_n):
            l0 = pts[3 * k] - tf[j, 0, 3]
            l1 = pts[3 * k + 1] - tf[j, 1, 3]
            l2 = pts[3 * k + 2] - tf[j, 2, 3]
            c0, c1, c2 = ax1 * l2 - ax2 * l1, ax2 * l0 - ax0 * l2, ax0 * l1 - ax1 * l0
            for a in range(dof):
                w = coupling[k, j, a]
                if w != 0.0:
                    dp[3 * k, a] += w * c0
                    dp[3 * k + 1, a] += w * c1
                    dp[3 * k + 2, a] += w * c2
    for r in range(rows):
        for a in range(dof):
            acc = 0.0
            for i in range(dp.shape[0]):
                acc += res_map[r, i] * dp[i, a]
            out[r, a] = acc


@_jit
def _spd_solve(a, g, out):
    """out = a^-1 g for a symmetric positive definite `a` (Cholesky, in place on `a`). LM's damped normal
    matrix is SPD; numba's np.linalg.solve would compile LAPACK bindings for ~9 s."""
    n = a.shape[0]
    for j in range(n):
        d = a[j, j]
        for t in range(j):
            d -= a[j, t] * a[j, t]
        d = math.sqrt(d) if d > 0.0 else 1e-300
        a[j, j] = d
        for i in range(j + 1, n):
            v = a[i, j]
            for t in range(j):
                v -= a[i, t] * a[j, t]
            a[i, j] = v / d
    for i in range(n):                      # L y = g
        v = g[i]
        for t in range(i):
            v -= a[i, t] * out[t]
        out[i] = v / a[i, i]
    for i in range(n - 1, -1, -1):          # L^T x = y
        v = out[i]
        for t in range(i + 1, n):
            v -= a[t, i] * out[t]
        out[i] = v / a[i, i]


@_jit
def hand_lm(q, anchor, sqrt_prior, neg_shift, slots, off_h, res_map, coupling, iterations, mu, n_tip_rows,
            lower, upper, table, parents, m, b, direct, axes, tf):
    """`teleop.fastkin.FastHand.solve` in one call: Levenberg-Marquardt on the hand residual from `q`
    (clamped; updated in place). Returns (q, mean tip error). `anchor` is the prior's centre (read when
    sqrt_prior > 0); the chain arguments are `NumpyChain.jit_args()` (`tf`: its FK work buffer)."""
    rows = res_map.shape[0]
    dof = q.shape[0]
    big = rows + dof
    pts = np.empty(3 * slots.shape[0])
    dp = np.empty((3 * slots.shape[0], dof))
    jac = np.zeros((big, dof))
    r = np.zeros(big)
    trial = np.zeros(big)
    for a in range(dof):
        jac[rows + a, a] = sqrt_prior
    _fk(q, table, parents, m, b, direct, tf)
    _points(tf, slots, off_h, pts)
    _residual(res_map, pts, neg_shift, r, rows)
    _jacobian(tf, pts, axes, coupling, res_map, dp, jac, rows)
    cost = 0.0
    for i in range(big):
        cost += r[i] * r[i]
    jtj = np.empty((dof, dof))
    g = np.empty(dof)
    q_new = np.empty(dof)
    lhs = np.empty((dof, dof))
    step = np.empty(dof)
    for it in range(iterations):
        for a in range(dof):
            for c in range(a, dof):
                acc = 0.0
                for i in range(big):
                    acc += jac[i, a] * jac[i, c]
                jtj[a, c] = acc
                jtj[c, a] = acc
            acc = 0.0
            for i in range(big):
                acc += jac[i, a] * r[i]
            g[a] = acc
        c_new = cost
        while True:
            for a in range(dof):
                for c in range(dof):
                    lhs[a, c] = jtj[a, c]
                lhs[a, a] += mu * (jtj[a, a] + 1e-9)
            _spd_solve(lhs, g, step)
            for a in range(dof):
                v = q[a] - step[a]
                q_new[a] = min(max(v, lower[a]), upper[a])
            _fk(q_new, table, parents, m, b, direct, tf)
            _points(tf, slots, off_h, pts)
            _residual(res_map, pts, neg_shift, trial, rows)
            for a in range(dof):
                trial[rows + a] = sqrt_prior * (q_new[a] - anchor[a]) if sqrt_prior > 0.0 else 0.0
            c_new = 0.0
            for i in range(big):
                c_new += trial[i] * trial[i]
            if c_new < cost or mu > 1e6:
                break
            mu *= 10.0
        if c_new >= cost:
            break
        mu = max(mu / 10.0, 1e-7)
        converged = cost - c_new < max(1e-12, 1e-3 * cost)
        for a in range(dof):
            q[a] = q_new[a]
        cost = c_new
        for i in range(big):
            r[i] = trial[i]
        if converged or it == iterations - 1:
            break
        _jacobian(tf, pts, axes, coupling, res_map, dp, jac, rows)
    err = 0.0
    n_tips = n_tip_rows // 3
    for t in range(n_tips):
        err += math.sqrt(r[3 * t] * r[3 * t] + r[3 * t + 1] * r[3 * t + 1] + r[3 * t + 2] * r[3 * t + 2])
    return q, err / n_tips


@_jit
def arm_dls(q, p_t, r_t, rest_pull, rest_gain, use_rest, rot_weight, damp2, iterations, max_step, tolerance,
            rest_iterations, lower, upper, table, parents, m, b, direct, axes, tf):
    """`teleop.fastkin.dls_ik` in one call: damped least squares on the wrist error (position, and half the
    summed column cross products for rotation, weighted `rot_weight`), with the rest-posture pull in the
    arm's null space. `q` (clamped) is updated in place. Returns (q, position error m, rotation error rad)."""
    n = parents.shape[0]
    dof = q.shape[0]
    end = n - 1
    err = np.empty(6)
    jac = np.empty((6, dof))
    gram = np.empty((6, 6))
    u = np.empty(6)
    sol = np.empty(6)
    dq = np.empty(dof)
    pull = np.empty(dof)
    w = np.empty(6)
    for i in range(6):
        w[i] = 1.0 if i < 3 else rot_weight
    _fk(q, table, parents, m, b, direct, tf)
    for it in range(iterations):
        for i in range(3):
            err[i] = p_t[i] - tf[end, i, 3]
        e0 = 0.0
        e1 = 0.0
        e2 = 0.0
        for col in range(3):
            a0, a1, a2 = tf[end, 0, col], tf[end, 1, col], tf[end, 2, col]
            b0, b1, b2 = r_t[0, col], r_t[1, col], r_t[2, col]
            e0 += a1 * b2 - a2 * b1
            e1 += a2 * b0 - a0 * b2
            e2 += a0 * b1 - a1 * b0
        err[3], err[4], err[5] = 0.5 * e0, 0.5 * e1, 0.5 * e2
        worst = 0.0
        for i in range(6):
            worst = max(worst, abs(err[i]))
        converged = worst < tolerance
        if converged and it >= rest_iterations:
            break
        pulling = use_rest and it < iterations - 3
        if converged and not pulling:
            break
        for j in range(dof):
            x0 = tf[j, 0, 0] * axes[j, 0] + tf[j, 0, 1] * axes[j, 1] + tf[j, 0, 2] * axes[j, 2]
            x1 = tf[j, 1, 0] * axes[j, 0] + tf[j, 1, 1] * axes[j, 1] + tf[j, 1, 2] * axes[j, 2]
            x2 = tf[j, 2, 0] * axes[j, 0] + tf[j, 2, 1] * axes[j, 1] + tf[j, 2, 2] * axes[j, 2]
            l0 = tf[end, 0, 3] - tf[j, 0, 3]
            l1 = tf[end, 1, 3] - tf[j, 1, 3]
            l2 = tf[end, 2, 3] - tf[j, 2, 3]
            jac[0, j] = x1 * l2 - x2 * l1
            jac[1, j] = x2 * l0 - x0 * l2
            jac[2, j] = x0 * l1 - x1 * l0
            jac[3, j] = rot_weight * x0
            jac[4, j] = rot_weight * x1
            jac[5, j] = rot_weight * x2
        for r in range(6):
            for c in range(r, 6):
                acc = 0.0
                for j in range(dof):
                    acc += jac[r, j] * jac[c, j]
                gram[r, c] = acc
                gram[c, r] = acc
            gram[r, r] += damp2
        if pulling:
            for j in range(dof):
                pull[j] = rest_pull[j] - rest_gain * q[j]
            for r in range(6):
                acc = 0.0
                for j in range(dof):
                    acc += jac[r, j] * pull[j]
                u[r] = -acc if converged else err[r] * w[r] - acc
        else:
            for r in range(6):
                u[r] = err[r] * w[r]
        _spd_solve(gram, u, sol)
        small = True
        for j in range(dof):
            acc = 0.0
            for r in range(6):
                acc += sol[r] * jac[r, j]
            if pulling:
                acc += pull[j]
            dq[j] = acc
            if abs(acc) >= tolerance:
                small = False
        if pulling and converged and small:
            break
        for j in range(dof):
            step = min(max(dq[j], -max_step), max_step)
            q[j] = min(max(q[j] + step, lower[j]), upper[j])
        _fk(q, table, parents, m, b, direct, tf)
    pe = 0.0
    tr = 0.0
    for i in range(3):
        d = p_t[i] - tf[end, i, 3]
        pe += d * d
        for col in range(3):
            tr += tf[end, i, col] * r_t[i, col]
    cos = min(1.0, max(-1.0, (tr - 1.0) / 2.0))
    return q, math.sqrt(pe), math.acos(cos)
