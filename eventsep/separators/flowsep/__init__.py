"""FlowSep: a text-conditioned rectified-flow separator (official size on diffusers, and a mini model)."""
