"""The house every service shares: its model (entities, areas, floors,
states), the store that swaps it whole and keeps it on disk, the matcher and
the project's own sentences, the ASR's vocabulary of the house's commands,
the LLM's tools, the safety rules and the answers to questions.

No protocol here: nothing in this package imports wyoming or aiohttp.
"""
