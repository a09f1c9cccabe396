import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../structure/source-tree.js';

/**
 * The dashboard's colours meet WCAG 2.x AA: 4.5:1 for text, 3:1 for the borders of controls and
 * the focus ring (1.4.11). The ratios come from the CSS variables of src/api/ui/style.css, light
 * (the first :root) and dark (the :root inside prefers-color-scheme: dark).
 */
type Palette = Record<string, string>;

function palettes(css: string): { light: Palette; dark: Palette } {
  const read = (block: string): Palette => Object.fromEntries([...block.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})\s*;/gi)].map((m) => [m[1], m[2]]));
  const dark = css.indexOf('@media (prefers-color-scheme: dark)');
  expect(dark, 'a dark palette').to.be.greaterThan(0);
  return { light: read(css.slice(0, dark)), dark: read(css.slice(dark, css.indexOf('}', css.indexOf(':root', dark)))) };
}

function luminance(hex: string): number {
  const channel = (i: number): number => {
    const c = parseInt(hex.slice(1 + 2 * i, 3 + 2 * i), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** [foreground, background, minimum]: every pair the stylesheet puts together. */
const PAIRS: Array<[string, string, number]> = [
  ['text', 'bg', 4.5], ['text', 'surface', 4.5], ['muted', 'bg', 4.5], ['muted', 'surface', 4.5],
  ['accent', 'bg', 4.5], ['accent', 'surface', 4.5], ['bad-fg', 'bg', 4.5], ['bad-fg', 'surface', 4.5],
  ['on-primary', 'primary', 4.5], ['on-danger', 'danger', 4.5],
  ['ok-fg', 'ok-bg', 4.5], ['info-fg', 'info-bg', 4.5], ['warn-fg', 'warn-bg', 4.5], ['bad-fg', 'bad-bg', 4.5], ['neutral-fg', 'neutral-bg', 4.5],
  ['control-line', 'bg', 3], ['control-line', 'surface', 3], ['focus', 'bg', 3], ['focus', 'surface', 3],
];

describe('dashboard colours (WCAG AA)', () => {
  const css = readFileSync(join(repoRoot(), 'src/api/ui/style.css'), 'utf8');
  const { light, dark } = palettes(css);

  for (const [scheme, palette] of [['light', light], ['dark', dark]] as const) {
    it(`${scheme}: every text pair reaches 4.5:1, borders and focus 3:1`, () => {
      const short: string[] = [];
      for (const [fg, bg, min] of PAIRS) {
        expect(palette, `--${fg} in ${scheme}`).to.have.property(fg);
        expect(palette, `--${bg} in ${scheme}`).to.have.property(bg);
        const ratio = contrast(palette[fg], palette[bg]);
        if (ratio < min) short.push(`--${fg} on --${bg}: ${ratio.toFixed(2)} < ${min}`);
      }
      expect(short).to.deep.equal([]);
    });
  }

  it('computes the WCAG ratio (black on white is 21:1)', () => {
    expect(contrast('#000000', '#ffffff')).to.be.closeTo(21, 0.001);
    expect(contrast('#777777', '#ffffff')).to.be.closeTo(4.48, 0.01);
  });
});
