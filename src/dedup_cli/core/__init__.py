"""The vocabulary every stage shares: pairs, file facts, method names, keep rules, grouping
without chaining, the plan.
"""
