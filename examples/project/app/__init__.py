"""A tiny sentiment service built with daidai."""
