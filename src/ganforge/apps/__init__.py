"""Layer 4: what users do with GANs beyond sampling (impute, detect, classify)."""
