"""The bakery chain's catalogue and cities, from which the generator draws stores and products."""

from __future__ import annotations

from dataclasses import dataclass

# Weekly demand profile per product family, Monday..Sunday.
WEEKLY_PROFILE: dict[str, tuple[float, ...]] = {
    "viennoiserie": (0.85, 0.85, 0.9, 0.9, 1.0, 1.35, 1.55),
    "pain": (0.95, 0.95, 0.95, 1.0, 1.05, 1.2, 1.1),
    "patisserie": (0.7, 0.75, 0.8, 0.85, 1.0, 1.4, 1.75),
    "snacking": (1.15, 1.15, 1.15, 1.15, 1.1, 0.7, 0.45),
    "boisson": (1.05, 1.05, 1.05, 1.05, 1.05, 0.9, 0.8),
}

# Demand multiplier on a public holiday, per family.
HOLIDAY_EFFECT: dict[str, float] = {
    "viennoiserie": 1.3,
    "pain": 1.1,
    "patisserie": 1.5,
    "snacking": 0.5,
    "boisson": 0.8,
}


@dataclass(frozen=True)
class ProductSpec:
    name: str
    family: str
    base_price: float
    base_demand: float  # units per day in an average store at the regular price
    elasticity: float  # d log(demand) / d log(price)
    season_amplitude: float  # yearly seasonality, relative
    season_peak_doy: int  # day of year of the yearly peak


CATALOGUE: tuple[ProductSpec, ...] = (
    ProductSpec("Croissant", "viennoiserie", 1.20, 120, -1.4, 0.08, 15),
    ProductSpec("Pain au chocolat", "viennoiserie", 1.35, 100, -1.3, 0.08, 20),
    ProductSpec("Baguette tradition", "pain", 1.30, 220, -0.5, 0.05, 300),
    ProductSpec("Baguette", "pain", 1.05, 180, -0.6, 0.05, 300),
    ProductSpec("Pain aux raisins", "viennoiserie", 1.60, 35, -1.5, 0.10, 40),
    ProductSpec("Chausson aux pommes", "viennoiserie", 1.80, 30, -1.5, 0.2, 290),
    ProductSpec("Pain de campagne", "pain", 3.20, 40, -0.8, 0.10, 330),
    ProductSpec("Eclair au chocolat", "patisserie", 3.10, 25, -1.8, 0.10, 350),
    ProductSpec("Tarte aux fraises", "patisserie", 4.50, 15, -1.6, 0.45, 160),
    ProductSpec("Flan patissier", "patisserie", 2.90, 20, -1.4, 0.10, 100),
    ProductSpec("Sandwich jambon-beurre", "snacking", 4.90, 45, -1.2, 0.15, 170),
    ProductSpec("Quiche lorraine", "snacking", 4.20, 20, -1.1, 0.15, 60),
    ProductSpec("Cafe", "boisson", 1.50, 70, -0.7, 0.20, 20),
    ProductSpec("Jus d'orange", "boisson", 2.80, 18, -1.0, 0.35, 190),
    ProductSpec("Pain complet", "pain", 2.60, 30, -0.9, 0.05, 30),
    ProductSpec("Brioche", "viennoiserie", 2.40, 22, -1.2, 0.15, 355),
    ProductSpec("Millefeuille", "patisserie", 3.60, 14, -1.7, 0.10, 340),
    ProductSpec("Croque-monsieur", "snacking", 4.40, 18, -1.2, 0.20, 20),
    ProductSpec("Cookie", "patisserie", 1.90, 30, -1.3, 0.10, 320),
    ProductSpec("Pain aux cereales", "pain", 2.90, 25, -0.9, 0.05, 60),
)

# Flavour variants that extend the catalogue beyond its base products.
VARIANTS = ("aux amandes", "bio", "XL", "mini", "sans gluten", "maison", "au beurre AOP")

# (city, region, weight): where stores open, roughly by population.
CITIES: tuple[tuple[str, str, float], ...] = (
    ("Paris", "Ile-de-France", 8.0),
    ("Boulogne-Billancourt", "Ile-de-France", 1.0),
    ("Versailles", "Ile-de-France", 1.0),
    ("Lyon", "Auvergne-Rhone-Alpes", 3.0),
    ("Grenoble", "Auvergne-Rhone-Alpes", 1.0),
    ("Marseille", "Provence-Alpes-Cote d'Azur", 3.0),
    ("Nice", "Provence-Alpes-Cote d'Azur", 1.5),
    ("Toulouse", "Occitanie", 2.0),
    ("Montpellier", "Occitanie", 1.5),
    ("Bordeaux", "Nouvelle-Aquitaine", 2.0),
    ("Nantes", "Pays de la Loire", 1.5),
    ("Rennes", "Bretagne", 1.2),
    ("Lille", "Hauts-de-France", 1.8),
    ("Strasbourg", "Grand Est", 1.4),
    ("Reims", "Grand Est", 0.8),
    ("Dijon", "Bourgogne-Franche-Comte", 0.8),
    ("Rouen", "Normandie", 0.9),
    ("Tours", "Centre-Val de Loire", 0.8),
)
