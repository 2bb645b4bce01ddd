import { memo } from "react";
import ReactMarkdown from "react-markdown";

/**
 * An agent's message as markdown. HTML in the text is not rendered (react-markdown shows it
 * as text), links open in a new tab, and unsafe link targets (javascript:, …) are dropped.
 */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <ReactMarkdown
      skipHtml={false}
      components={{
        a: ({ node: _node, ...props }) => <a {...props} target="_blank" rel="noreferrer noopener" />,
      }}
    >
      {text}
    </ReactMarkdown>
  );
});
