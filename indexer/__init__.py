"""Offline batch job: scan → decode → embed → write vectors + rows → build the FAISS index."""
