"""Inference on real captures: reading pairs and metadata, building trained networks, tiling.

Used by the ``fnf-denoise`` command (:mod:`fnf_basicsr.denoise`).
"""
