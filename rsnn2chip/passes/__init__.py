"""Compiler passes. Each module does one job on the IR: quantize, partition, check, estimate."""
