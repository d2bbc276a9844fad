"""Models: the registry (a leaf), the built-in architectures (one file per family), references and weights.

Importing this package imports none of them: `models.refs` imports the architecture files when a model is first
looked up, so reading the registry or the settings never pays for torch.
"""
