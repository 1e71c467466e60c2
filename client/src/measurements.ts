/** Labels for the values the server measured; the client never computes a value itself. */

const UNIT_SUFFIXES: Array<[RegExp, string]> = [
  [/_mm2$/, "mm²"],
  [/_mm$/, "mm"],
  [/_px2$/, "px²"],
  [/_px$/, "px"],
  [/_deg(rees)?$/, "°"],
  [/_hu$/i, "HU"],
  [/_cm2$/, "cm²"],
];

const LABELS: Record<string, string> = {
  length: "Length",
  angle: "Angle",
  cobb: "Cobb",
  area: "Area",
  mean: "Mean",
  std: "SD",
  min: "Min",
  max: "Max",
  value: "Value",
};

function format(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 1 : abs >= 1 ? 2 : 3;
  return value.toFixed(digits);
}

/** `{length_mm: 42.123}` -> `["Length 42.12 mm"]`; `{mean: {value, unit}}` is read too. */
export function measurementLines(values: Record<string, unknown> | undefined, unitsHint = ""): string[] {
  if (!values) return [];
  const lines: string[] = [];
  const sharedUnit = typeof values.unit === "string" ? values.unit : typeof values.units === "string" ? values.units : unitsHint;
  const areaUnit = typeof values.area_unit === "string" ? values.area_unit : "";
  const valueUnit = typeof values.value_unit === "string" ? values.value_unit : sharedUnit;
  for (const [key, raw] of Object.entries(values)) {
    if (key === "unit" || key === "units" || key === "pixels" || key.endsWith("_unit")) continue;
    let number: number | null = null;
    let unit = "";
    if (typeof raw === "number" && Number.isFinite(raw)) {
      number = raw;
    } else if (raw && typeof raw === "object" && typeof (raw as { value?: unknown }).value === "number") {
      number = (raw as { value: number }).value;
      const u = (raw as { unit?: unknown }).unit;
      unit = typeof u === "string" ? u : "";
    }
    if (key === "value" && Array.isArray(raw) && raw.every((v) => typeof v === "number")) {
      // A colour pixel's probe: one number per sample.
      lines.push(`Value (${raw.map((v: number) => format(v)).join(", ")})${valueUnit ? ` ${valueUnit}` : ""}`);
      continue;
    }
    if (number === null) continue;
    let base = key;
    if (!unit) {
      for (const [pattern, suffix] of UNIT_SUFFIXES) {
        if (pattern.test(key)) {
          unit = suffix;
          base = key.replace(pattern, "");
          break;
        }
      }
    }
    if (!unit && base === "area") unit = areaUnit;
    if (!unit && (base === "angle" || base === "cobb")) unit = "°";
    if (!unit && base === "length") unit = sharedUnit;
    if (!unit && ["mean", "std", "min", "max", "value"].includes(base)) unit = valueUnit;
    const label = LABELS[base] ?? base.replace(/_/g, " ");
    lines.push(`${label} ${format(number)}${unit ? (unit === "°" ? "°" : ` ${unit}`) : ""}`);
  }
  return lines;
}

/** Points a tool needs before it is sent to the server. */
export const POINTS_NEEDED: Record<string, number> = {
  length: 2,
  arrow: 2,
  rectangle: 2,
  ellipse: 2,
  angle: 3,
  cobb: 4,
  text: 1,
  probe: 1,
};
