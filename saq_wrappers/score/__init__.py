"""ARQ: state-conditioned score model of the behavior policy and its support sampler."""
