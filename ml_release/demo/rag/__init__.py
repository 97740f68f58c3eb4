"""The demo RAG set: corpus, questions, prompt versions and their recorded answers."""
