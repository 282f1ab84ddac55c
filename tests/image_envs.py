"""Tiny image environments for the CnnPolicy and MultiInputPolicy tests (real gymnasium envs, fast to step)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: The smallest square image NatureCNN accepts (8x8 stride 4, 4x4 stride 2, 3x3 stride 1 leave one position).
SIDE = 36


class BrightSideEnv(gym.Env):
    """
    A 36x36 grayscale image whose left or right half is bright; the agent is rewarded for naming the bright side
    (``Discrete(2)``) or, with ``continuous=True``, for an action in [-1, 1] whose sign matches it. Episodes last
    ``horizon`` steps. With ``dict_obs=True`` the observation is ``{"image": ..., "vector": (2,) float}``
    (MultiInputPolicy).

    :param continuous: Box actions instead of Discrete.
    :param dict_obs: Dict observations.
    :param horizon: Steps per episode.
    """

    def __init__(self, continuous: bool = False, dict_obs: bool = False, horizon: int = 16) -> None:
        super().__init__()
        image = spaces.Box(0, 255, (SIDE, SIDE, 1), dtype=np.uint8)
        self.observation_space = (
            spaces.Dict({"image": image, "vector": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)}) if dict_obs else image
        )
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32) if continuous else spaces.Discrete(2)
        self.continuous, self.dict_obs, self.horizon = continuous, dict_obs, horizon
        self._side, self._t = 0, 0

    def _obs(self) -> Any:
        image = np.zeros((SIDE, SIDE, 1), dtype=np.uint8)
        image[:, self._side * SIDE // 2 : (self._side + 1) * SIDE // 2] = 255
        if not self.dict_obs:
            return image
        return {"image": image, "vector": np.array([self._side * 2 - 1, self._t / self.horizon], dtype=np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._side, self._t = int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        chosen = int(np.asarray(action).reshape(-1)[0] > 0) if self.continuous else int(action)
        reward = 1.0 if chosen == self._side else 0.0
        self._t += 1
        self._side = int(self.np_random.integers(2))
        return self._obs(), reward, False, self._t >= self.horizon, {}
