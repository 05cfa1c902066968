from rlev.verify.rule import RuleVerifier, extract_final_answer, verify
