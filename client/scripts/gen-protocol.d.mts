export const CATALOG_DIR: string;
export const OUTPUT: string;
export function generate(dir?: string): string;
