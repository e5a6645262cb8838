"""What an LLM request spends, and the day's budgets it must fit in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenSpend:
    """Tokens of a request (negative: a reservation settled lower) and their cost."""

    prompt: int
    completion: int
    cost: float = 0.0

    def __sub__(self, other: TokenSpend) -> TokenSpend:
        return TokenSpend(
            self.prompt - other.prompt, self.completion - other.completion, self.cost - other.cost
        )


@dataclass(frozen=True)
class TokenBudget:
    """Tokens (in + out) and money an engine may spend per UTC day; 0: no budget."""

    tokens: int = 0
    cost: float = 0.0


NO_BUDGET = TokenBudget()
