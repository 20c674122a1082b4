"""Pure-functional networks: ``init(key, ...) -> params`` and ``apply(params, x)``.

Params are pytrees of arrays; ``x: (batch, n_in)`` → ``(batch, n_out)``.
"""
