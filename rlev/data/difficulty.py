"""The paper's difficulty ladder: category -> points, out of a total of 100 (Table 3).

WebInstruct-verified labels each question with one of five difficulty categories and
nothing else about its worth; the paper gives every prompt a total of 100 and the
category's points, so v = points / 100. This module holds that ladder once, for the data
code that needs it as a fact about the data:

- ``rlev.data.sources.webinstruct`` scores WebInstruct rows with it (the only value the
  dataset has);
- ``rlev.data.arithmetic`` gives its levels these names and points, so the synthetic
  exams and the synthetic stand-in for WebInstruct (``rlev.data.noisy``) are built on the
  same ladder.

The ``weak`` reward variant reads its mapping from the config instead
(``reward.weak_points``, whose schema default is this ladder): the user may weigh the
categories differently without changing the data. tests/test_config.py checks that the
default and this constant agree.

>>> DIFFICULTIES
('primary', 'junior', 'senior', 'university', 'phd')
"""

from __future__ import annotations

# Easiest to hardest; the order is the ladder's (and the synthetic generators draw levels in it).
DIFFICULTY_POINTS: dict[str, int] = {"primary": 1, "junior": 2, "senior": 4, "university": 6, "phd": 8}
DIFFICULTIES: tuple[str, ...] = tuple(DIFFICULTY_POINTS)
