"""`spotter seti search`: a Breakthrough Listen narrowband search over real .fil/.h5 cadences."""
