//! The benchmarks' charts as plain SVG text: horizontal bars (grouped when there are several
//! series) and lines over a linear or logarithmic x axis. A few hundred lines of our own
//! instead of a plotting crate: the charts are simple and the bench builds stay fast.

use std::fmt::Write as _;

const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f",
];
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";
/// Rough width of a character at FONT's size: enough to size the label column.
const CHAR_W: f64 = 6.8;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A step of 1, 2 or 5 times a power of ten giving about `n` ticks up to `max`, and the
/// axis end (a multiple of it).
fn ticks(max: f64, n: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / n;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    (step, (max / step).ceil() * step)
}

/// A tick label without trailing zeros: 0.5, 2, 1500.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A bar's value with three significant digits or as an integer: 17.0, 0.0830, 146471.
fn value_label(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

/// One series of a bar chart: a value per category, None where nothing was measured.
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Horizontal bars, one group per category, one bar per series, the value written at the
/// end of each bar.
pub struct Bars {
    pub title: String,
    pub unit: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
}

impl Bars {
    pub fn svg(&self) -> String {
        let bar_h = 16.0;
        let gap = 10.0;
        let label_w = self
            .categories
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0) as f64
            * CHAR_W
            + 16.0;
        let plot_w = 460.0;
        let value_w = 90.0;
        let top = 40.0 + if self.series.len() > 1 { 22.0 } else { 0.0 };
        let group_h = bar_h * self.series.len().max(1) as f64 + gap;
        let plot_h = group_h * self.categories.len() as f64;
        let width = label_w + plot_w + value_w;
        let height = top + plot_h + 45.0;
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |m, v| m.max(*v));
        let (step, axis_max) = ticks(max, 5.0);
        let x = |v: f64| label_w + plot_w * (v / axis_max).clamp(0.0, 1.0);

        let mut s = header(width, height, &self.title);
        if self.series.len() > 1 {
            legend(
                &mut s,
                label_w,
                34.0,
                self.series.iter().map(|s| s.name.as_str()),
            );
        }
        let mut t = 0.0;
        while t <= axis_max + step / 2.0 {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{top:.1}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/>\n<text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\" {FONT}>{3}</text>",
                x(t),
                top + plot_h,
                top + plot_h + 16.0,
                tick_label(t)
            );
            t += step;
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {FONT}>{}</text>",
            label_w + plot_w / 2.0,
            top + plot_h + 36.0,
            escape(&self.unit)
        );
        for (i, category) in self.categories.iter().enumerate() {
            let y0 = top + i as f64 * group_h + gap / 2.0;
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" {FONT}>{}</text>",
                label_w - 8.0,
                y0 + group_h / 2.0 - gap / 2.0 + 4.0,
                escape(category)
            );
            for (j, series) in self.series.iter().enumerate() {
                let y = y0 + j as f64 * bar_h;
                let color = PALETTE[j % PALETTE.len()];
                match series.values.get(i).copied().flatten() {
                    Some(v) => {
                        let _ = writeln!(
                            s,
                            "<rect x=\"{label_w:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" {FONT}>{}</text>",
                            (x(v) - label_w).max(0.5),
                            bar_h - 2.0,
                            x(v) + 4.0,
                            y + bar_h - 5.0,
                            value_label(v)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" {FONT}>not available</text>",
                            label_w + 4.0,
                            y + bar_h - 5.0
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "<line x1=\"{label_w:.1}\" y1=\"{top:.1}\" x2=\"{label_w:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n</svg>",
            top + plot_h
        );
        s
    }
}

/// Lines through measured points, over a linear or base-10 logarithmic x axis; the y axis
/// starts at zero.
pub struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Lines {
    pub fn svg(&self) -> String {
        let (left, right, top, bottom) = (70.0, 30.0, 62.0, 55.0);
        let (plot_w, plot_h) = (640.0, 320.0);
        let width = left + plot_w + right;
        let height = top + plot_h + bottom;
        let points = || self.series.iter().flat_map(|(_, p)| p.iter());
        let fx = |v: f64| if self.log_x { v.max(1e-9).log10() } else { v };
        let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
            (lo.min(fx(*x)), hi.max(fx(*x)))
        });
        let (x_min, x_max) = if self.log_x {
            (x_min.floor(), x_max.ceil().max(x_min.floor() + 1.0))
        } else {
            (0.0, ticks(x_max, 6.0).1)
        };
        let y_max = points().fold(0.0f64, |m, (_, y)| m.max(*y));
        let (y_step, y_max) = ticks(y_max * 1.05, 5.0);
        let px = |v: f64| left + plot_w * (fx(v) - x_min) / (x_max - x_min).max(1e-9);
        let py = |v: f64| top + plot_h * (1.0 - v / y_max);

        let mut s = header(width, height, &self.title);
        legend(
            &mut s,
            left,
            34.0,
            self.series.iter().map(|(n, _)| n.as_str()),
        );
        let mut t = 0.0;
        while t <= y_max + y_step / 2.0 {
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\n<text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\" {FONT}>{4}</text>",
                py(t),
                left + plot_w,
                left - 6.0,
                py(t) + 4.0,
                tick_label(t)
            );
            t += y_step;
        }
        let x_ticks: Vec<f64> = if self.log_x {
            (x_min as i32..=x_max as i32)
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            let (step, end) = ticks(x_max, 6.0);
            (0..=((end / step).round() as usize))
                .map(|i| i as f64 * step)
                .collect()
        };
        for t in x_ticks {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/>\n<text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\" {FONT}>{3}</text>",
                px(t),
                top + plot_h,
                top + plot_h + 16.0,
                tick_label(t)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {FONT}>{}</text>\n<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" {FONT}>{}</text>",
            left + plot_w / 2.0,
            top + plot_h + 40.0,
            escape(&self.x_label),
            top + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, (_, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
            for (x, y) in pts {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    px(*x),
                    py(*y)
                );
            }
        }
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#333\"/>\n</svg>"
        );
        s
    }
}

fn header(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-family=\"sans-serif\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    )
}

fn legend<'a>(s: &mut String, x0: f64, y: f64, names: impl Iterator<Item = &'a str>) {
    let mut x = x0;
    for (i, name) in names.enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{y:.1}\" {FONT}>{}</text>",
            y - 10.0,
            PALETTE[i % PALETTE.len()],
            x + 16.0,
            escape(name)
        );
        x += 16.0 + name.chars().count() as f64 * CHAR_W + 20.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_three_digits() {
        assert_eq!(value_label(146_470.633), "146471");
        assert_eq!(value_label(17.034), "17.0");
        assert_eq!(value_label(0.0831), "0.0831");
        assert_eq!(value_label(0.0), "0");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(17.03, 5.0), (5.0, 20.0));
        assert_eq!(ticks(237.4, 5.0), (50.0, 250.0));
        assert_eq!(ticks(0.008, 5.0).0, 0.002);
    }

    #[test]
    fn charts_escape_labels_and_mark_missing_values() {
        let bars = Bars {
            title: "a <b> & c".into(),
            unit: "ms".into(),
            categories: vec!["x".into(), "y".into()],
            series: vec![BarSeries {
                name: "s".into(),
                values: vec![Some(3.0), None],
            }],
        }
        .svg();
        assert!(bars.contains("a &lt;b&gt; &amp; c"));
        assert!(bars.contains("not available"));
        assert!(bars.ends_with("</svg>\n"));
        let lines = Lines {
            title: "t".into(),
            x_label: "rules".into(),
            y_label: "ns".into(),
            log_x: true,
            series: vec![("s".into(), vec![(7.0, 200.0), (100_007.0, 210.0)])],
        }
        .svg();
        assert!(lines.contains(">100000<"));
        assert!(lines.contains("<polyline"));
    }
}
