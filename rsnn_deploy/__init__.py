"""rsnn-deploy: recurrent spiking networks from PyTorch to neuromorphic hardware, with proof of parity."""

__version__ = "0.1.0"
