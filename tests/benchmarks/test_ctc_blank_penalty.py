import torch

from benchmarks.ctc_blank_penalty import greedy_with_blank_penalty
from pipeline.models.ctc import ctc_greedy_ids


def test_no_penalty_is_the_greedy_path_and_a_penalty_only_adds_tokens():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(40, 9) + torch.tensor([2.5] + [0.0] * 8), dim=-1)  # blank-heavy
    greedy = ctc_greedy_ids(log_probs[None], torch.tensor([40]))[0]
    assert greedy_with_blank_penalty(log_probs, 0.0) == greedy
    lengths = [len(greedy_with_blank_penalty(log_probs, p)) for p in (0.0, 1.0, 2.0, 4.0, 50.0)]
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0]
    before = log_probs.clone()
    greedy_with_blank_penalty(log_probs, 3.0)
    assert torch.equal(log_probs, before)  # the caller's log-probabilities are left as they were
