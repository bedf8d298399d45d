"""moalign: multi-objective RL fine-tuning of language models.

Two families of methods live here:

* EMORL/DMORL: one LoRA expert per objective trained with SCST, aggregated at decode time by a
  weighted sum of the experts' last hidden states, weights found by hierarchical grid search.
* MOLMA: one policy trained on a vector reward with APA, per-objective critics and Aligned-MTL.
"""

__version__ = "0.1.0"
