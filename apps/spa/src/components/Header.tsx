interface HeaderProps {
  name: string | undefined;
  logoutUrl: string | undefined;
}

export function Header({ name, logoutUrl }: HeaderProps) {
  return (
    <header className="header">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true">
          G
        </span>
        <span className="brand-name">
          Gatehouse <span className="brand-sub">sample SPA</span>
        </span>
      </div>
      {name && logoutUrl && (
        <nav className="header-user" aria-label="Account">
          <span className="avatar" aria-hidden="true">
            {name.slice(0, 1).toUpperCase()}
          </span>
          <span className="header-name" data-testid="header-name">
            {name}
          </span>
          {/* Sign-out is a navigation: the BFF ends its session, then sends the browser to the IdP. */}
          <a className="button button-ghost" href={logoutUrl} data-testid="sign-out">
            Sign out
          </a>
        </nav>
      )}
    </header>
  );
}
