/** tree-sitter-powershell ships no type declarations: its default export is the grammar for Parser.setLanguage. */
declare module 'tree-sitter-powershell' {
  const language: unknown;
  export default language;
}
