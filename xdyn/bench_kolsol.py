"""KolSol side of the Kolmogorov-flow benchmark (filled in with the KolSol API)."""


def kolsol_rate(N, dt, n_steps):
    return None
