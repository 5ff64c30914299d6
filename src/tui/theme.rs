//! Themes as TOML (`themes/*.toml`): a dark default, a light one and a monochrome one that
//! is forced when `NO_COLOR` is set. Status is always a glyph as well as a colour, so the
//! monochrome theme loses nothing but colour.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

pub const DARK: &str = include_str!("../../themes/dark.toml");
pub const LIGHT: &str = include_str!("../../themes/light.toml");
pub const MONO: &str = include_str!("../../themes/mono.toml");

#[derive(Debug, Clone, Deserialize)]
struct ThemeFile {
    name: String,
    #[serde(default)]
    monochrome: bool,
    colors: Colors,
}

#[derive(Debug, Clone, Deserialize)]
struct Colors {
    fg: String,
    muted: String,
    accent: String,
    border: String,
    border_focused: String,
    selection_bg: String,
    ok: String,
    warn: String,
    error: String,
    denied: String,
    info: String,
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub monochrome: bool,
    pub fg: Color,
    pub muted: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focused: Color,
    pub selection_bg: Color,
    pub ok: Color,
    pub warn: Color,
    pub error: Color,
    pub denied: Color,
    pub info: Color,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThemeError {
    #[error("theme {0:?} is not valid TOML: {1}")]
    Parse(String, String),
    #[error("theme {theme:?}: unknown color {value:?} for `{key}` (use \"#rrggbb\", a color name, or \"reset\")")]
    Color { theme: String, key: &'static str, value: String },
    #[error("no theme named {0:?}: use dark, light, mono or a path to a theme file")]
    Unknown(String),
}

impl Theme {
    pub fn parse(text: &str, origin: &str) -> Result<Self, ThemeError> {
        let f: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse(origin.into(), e.to_string()))?;
        let c = &f.colors;
        let color = |key: &'static str, v: &str| {
            parse_color(v).ok_or_else(|| ThemeError::Color { theme: f.name.clone(), key, value: v.into() })
        };
        Ok(Self {
            name: f.name.clone(),
            monochrome: f.monochrome,
            fg: color("fg", &c.fg)?,
            muted: color("muted", &c.muted)?,
            accent: color("accent", &c.accent)?,
            border: color("border", &c.border)?,
            border_focused: color("border_focused", &c.border_focused)?,
            selection_bg: color("selection_bg", &c.selection_bg)?,
            ok: color("ok", &c.ok)?,
            warn: color("warn", &c.warn)?,
            error: color("error", &c.error)?,
            denied: color("denied", &c.denied)?,
            info: color("info", &c.info)?,
        })
    }

    /// By name (`dark`, `light`, `mono`) or path; `NO_COLOR` always wins.
    pub fn load(name: Option<&str>) -> Result<Self, ThemeError> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Self::parse(MONO, "mono");
        }
        match name.unwrap_or("dark") {
            "dark" => Self::parse(DARK, "dark"),
            "light" => Self::parse(LIGHT, "light"),
            "mono" | "monochrome" => Self::parse(MONO, "mono"),
            path => {
                let text = std::fs::read_to_string(path).map_err(|_| ThemeError::Unknown(path.into()))?;
                Self::parse(&text, path)
            }
        }
    }

    pub fn dark() -> Self {
        Self::parse(DARK, "dark").unwrap_or_else(|_| unreachable!("the built-in theme parses"))
    }

    pub fn text(&self) -> Style {
        Style::default().fg(self.fg)
    }

    pub fn muted(&self) -> Style {
        if self.monochrome { Style::default().add_modifier(Modifier::DIM) } else { Style::default().fg(self.muted) }
    }

    pub fn colored(&self, c: Color) -> Style {
        if self.monochrome { Style::default().add_modifier(Modifier::BOLD) } else { Style::default().fg(c) }
    }

    pub fn border(&self, focused: bool) -> Style {
        match (focused, self.monochrome) {
            (true, true) => Style::default().add_modifier(Modifier::BOLD),
            (true, false) => Style::default().fg(self.border_focused),
            (false, _) => Style::default().fg(self.border),
        }
    }

    pub fn selected(&self) -> Style {
        if self.monochrome {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(self.selection_bg)
        }
    }
}

fn parse_color(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    s.parse::<Color>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_parse() {
        for (text, name) in [(DARK, "dark"), (LIGHT, "light"), (MONO, "mono")] {
            let t = Theme::parse(text, name).unwrap();
            assert_eq!(t.name, name);
        }
        assert!(Theme::parse(MONO, "mono").unwrap().monochrome);
        assert_eq!(Theme::dark().accent, Color::Rgb(0x7a, 0xa2, 0xf7));
    }

    #[test]
    fn bad_colors_are_named() {
        let bad = DARK.replace("#7dcfff", "chartreuse-ish");
        let err = Theme::parse(&bad, "x").unwrap_err().to_string();
        assert!(err.contains("`info`") && err.contains("chartreuse-ish"), "{err}");
    }
}
