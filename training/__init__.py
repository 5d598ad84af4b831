"""The model side of the studio: LoRA training, the run registry, prediction and background jobs.

Never imports Streamlit; importing this package does not import torch (submodules do, when used).
"""
