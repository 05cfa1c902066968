"""Analyses of trained runs beyond the headline metrics (the paper's figures).

figure2  Figure 2: probability of the end-of-sequence token along each model's own
         greedy response, for the highest- and lowest-valued test prompts (measured per
         run by rlev.evaluate.eos).
value_stats  Figures 3 and 4: how question values are distributed, per dataset and split.
"""
