"""Monthly cost of the gateway on AWS, from the price table in infra/prices.json.

    python infra/budget.py          what the CloudFormation templates deploy at their default
                                    parameters, then the difference from the seed, line by line
    python infra/budget.py --seed   the seed document's budget table, row by row (total $904.95)

A row's monthly cost is count x unit price, less the units a free tier covers ("free"); an hourly
price becomes a monthly unit price over 730 hours, rounded to the cent, as the seed's own prices
are. Rows whose price could not be checked against a stored AWS page ("unverified") are marked *.
"""
import argparse
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

PRICES = Path(__file__).with_name("prices.json")
CENT = Decimal("0.01")
ZERO = Decimal(0)
SEED_COLUMNS = ["Category", "Type", "Region", "Instance type", "Instance size", "Platform", "Role",
                "Engine", "Data", "Count", "Unit price", "Total cost"]
SEED_FIELDS = ["category", "type", "region", "instance_type", "instance_size", "platform", "role",
               "engine", "data"]


def load(path=PRICES):
    """The price table."""
    return json.loads(Path(path).read_text())


def cents(value):
    return value.quantize(CENT, ROUND_HALF_UP)


def unit_price(row, hours):
    """A row's monthly price per unit."""
    if "hourly" in row:
        return cents(Decimal(row["hourly"]) * hours)
    return Decimal(row["unit_price"])


def cost(row, hours):
    """A row's monthly cost, after its free tier."""
    return cents(unit_price(row, hours) * max(row["count"] - row.get("free", 0), 0))


def seed_table(prices):
    """[(seed row, its total)] in the seed's order."""
    return [(row, cost(row, prices["hours_per_month"])) for row in prices["seed"]]


def design_table(prices):
    """[(design row, its unit price, its total)]."""
    hours = prices["hours_per_month"]
    return [(row, unit_price(row, hours), cost(row, hours)) for row in prices["design"]]


def differences(prices):
    """[(label, seed cost or None, design cost or None)]: each seed row against the design row
    that replaces it, then the design's rows that the seed does not have."""
    design = design_table(prices)
    replacing = {row["replaces"]: total for row, _, total in design if "replaces" in row}
    lines = [(seed_label(row), total, replacing.get(row["id"])) for row, total in seed_table(prices)]
    lines += [(f"{row['item']} {row['region']}", None, total)
              for row, _, total in design if "replaces" not in row]
    return lines


def seed_label(row):
    """"EC2 m5.large ap-south-1" for a seed row."""
    size = ".".join(filter(None, [row["instance_type"], row["instance_size"]]))
    return " ".join(filter(None, [row["type"], size, row["region"]]))


def dollars(value, sign=False):
    if value is None:
        return "-"
    text = f"${abs(value):,.2f}" if value == cents(value) else f"${abs(value):,f}"  # never 2E-7
    if value < 0:
        return "-" + text
    return "+" + text if sign else text


def render(headers, rows, numeric):
    """A plain-text table; columns whose index is in `numeric` are right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for cells in [headers, *rows]:
        lines.append("  ".join(str(cell).rjust(width) if i in numeric else str(cell).ljust(width)
                               for i, (cell, width) in enumerate(zip(cells, widths))).rstrip())
    return "\n".join(lines)


def seed_report(prices):
    rows = [[row[field] for field in SEED_FIELDS]
            + [row["count"], dollars(Decimal(row["unit_price"])), dollars(total)]
            for row, total in seed_table(prices)]
    total = sum(total for _, total in seed_table(prices))
    rows.append(["TOTAL"] + [""] * 10 + [dollars(total)])
    return render(SEED_COLUMNS, rows, numeric={9, 10, 11})


def design_report(prices):
    design = design_table(prices)
    rows = [[row["item"] + (" *" if row.get("unverified") else ""), row["region"], row["count"],
             row.get("free", ""), dollars(unit), dollars(total)] for row, unit, total in design]
    design_total = sum(total for _, _, total in design)
    rows.append(["TOTAL", "", "", "", "", dollars(design_total)])
    diff_rows = [[label, dollars(seed), dollars(new), dollars((new or ZERO) - (seed or ZERO), sign=True)]
                 for label, seed, new in differences(prices)]
    seed_total = sum(total for _, total in seed_table(prices))
    diff_rows.append(["TOTAL", dollars(seed_total), dollars(design_total),
                      dollars(design_total - seed_total, sign=True)])
    return "\n".join([
        "Monthly cost of the templates at their default parameters",
        render(["Item", "Region", "Count", "Free", "Unit price", "Cost"], rows, numeric={2, 3, 4, 5}),
        "* price not checked against a stored AWS page (its source says why)",
        "",
        "Difference from the seed's budget",
        render(["Line", "Seed", "Design", "Difference"], diff_rows, numeric={1, 2, 3}),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", action="store_true", help="print the seed's budget table")
    parser.add_argument("--prices", default=PRICES, help="price table (default: %(default)s)")
    args = parser.parse_args(argv)
    prices = load(args.prices)
    print(seed_report(prices) if args.seed else design_report(prices))


if __name__ == "__main__":
    main()
